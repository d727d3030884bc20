package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"courier/internal/bus/natsbus"
	"courier/internal/jobs"
)

// TestQuotaIsExactAcrossGateways: two managers (two gateways) on one
// store take uploads of one key. The first streams 600 bytes but has not
// finished; the second then streams 600 more under a 1000-byte quota and
// is refused, because the first's bytes are reserved in the shared quota
// bucket (each manager counting only its own uploads let both through, 1200
// bytes stored). Once the first is stored, and after a refused upload gives
// its reservation back, the room left is exact: 400 bytes fit, 401 do not.
func TestQuotaIsExactAcrossGateways(t *testing.T) {
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "q", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer srv.Shutdown(ctx)
	var ms [2]*jobs.Manager
	for i := range ms {
		conn, err := srv.Connect("gw")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		st, err := natsbus.OpenJobStore(ctx, conn, natsbus.JobStoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if ms[i], err = jobs.New(jobs.Config{MaxStoredBytesPerOwner: 1000}, st, nil); err != nil {
			t.Fatal(err)
		}
	}
	put := func(m *jobs.Manager, n int) (*jobs.Upload, error) {
		u, err := m.BeginUpload(ctx, "a")
		if err != nil {
			return nil, err
		}
		if err := u.Put(ctx, strings.NewReader(strings.Repeat("x", n))); err != nil {
			u.Close(ctx)
			return nil, err
		}
		return u, nil
	}
	first, err := put(ms[0], 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(ms[1], 600); !errors.Is(err, jobs.ErrQuota) {
		t.Fatalf("second gateway, 600 more bytes while 600 stream on the first: %v, want ErrQuota", err)
	}
	if _, err := first.Finish(ctx, "a.jsonl", jobs.PurposeBatch); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	if _, err := put(ms[1], 401); !errors.Is(err, jobs.ErrQuota) {
		t.Fatalf("401 bytes with 400 left: %v, want ErrQuota", err)
	}
	last, err := put(ms[1], 400)
	if err != nil {
		t.Fatalf("400 bytes with 400 left: %v", err)
	}
	if _, err := last.Finish(ctx, "b.jsonl", jobs.PurposeBatch); err != nil {
		t.Fatal(err)
	}
	last.Close(ctx)
	files, err := ms[0].Files(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range files {
		total += f.Bytes
	}
	if len(files) != 2 || total != 1000 {
		t.Fatalf("stored %d files, %d bytes; want 2, 1000", len(files), total)
	}
}
