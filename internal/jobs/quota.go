package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// An owner's stored bytes are the sizes of its file records (a scan of
// Files) plus the bytes of its uploads and batch outputs still on their way
// to a record, reserved in Store.Quota by compare-and-set. Every writer
// reserves before it writes, creates the file's record, and only then
// gives its reservation back, so a file's bytes are always counted at
// least once: in a reservation, in a record, or (for a moment) in both.
// A reservation succeeds only on the revision the writer read before it
// scanned the records; any reservation or give-back elsewhere changes that
// revision, so the writer reads and scans again. Hence the limit holds
// across gateways exactly: nothing is stored past it, and a refusal can
// only come from bytes that are stored or on their way.

// maxQuotaRetries bounds the compare-and-set rounds of one reservation;
// after a lost round a writer waits up to quotaBackoff (random), so that
// uploads racing for one key's entry spread out.
const (
	maxQuotaRetries = 256
	quotaBackoff    = 2 * time.Millisecond
)

// quotaStep is how far ahead of its bytes an upload reserves.
const quotaStep = 4 << 20

// quotaRecord is an owner's entry in Store.Quota.
type quotaRecord struct {
	Reserved int64 `json:"reserved"`
}

// quotaKey is owner's key in Store.Quota (owners are hex; "" is the owner
// without API keys).
func quotaKey(owner string) string {
	if owner == "" {
		return "owner._"
	}
	return "owner." + owner
}

// quotaView is what a writer last read: the reservation's revision (0: no
// entry), its bytes, and the owner's stored bytes scanned after it.
type quotaView struct {
	valid    bool
	rev      uint64
	reserved int64
	stored   int64
}

// reserve adds n bytes to owner's reservation. With check, it is ErrQuota
// when the owner's stored and reserved bytes plus n would pass the limit.
func (m *Manager) reserve(ctx context.Context, owner string, n int64, check bool, v *quotaView) error {
	kv, limit := m.st.Quota, m.cfg.MaxStoredBytesPerOwner
	for range maxQuotaRetries {
		if !v.valid {
			val, rev, err := kv.Get(ctx, quotaKey(owner))
			var rec quotaRecord
			switch {
			case errors.Is(err, ErrNotFound):
				rev = 0
			case err != nil:
				return fmt.Errorf("jobs: quota: %w", err)
			default:
				_ = json.Unmarshal(val, &rec)
			}
			var stored int64
			if check {
				if stored, err = m.storedBytes(ctx, owner); err != nil {
					return err
				}
			}
			*v = quotaView{valid: true, rev: rev, reserved: max(rec.Reserved, 0), stored: stored}
		}
		if check && limit > 0 && v.stored+v.reserved+n > limit {
			return fmt.Errorf("%w: this key stores %d bytes in files and has %d more on their way; %d more would pass the limit of %d; delete files first",
				ErrQuota, v.stored, v.reserved, n, limit)
		}
		val, _ := json.Marshal(quotaRecord{Reserved: v.reserved + n})
		var rev uint64
		var err error
		if v.rev == 0 {
			rev, err = kv.Create(ctx, quotaKey(owner), val)
		} else {
			rev, err = kv.Update(ctx, quotaKey(owner), val, v.rev)
		}
		switch {
		case err == nil:
			v.rev, v.reserved = rev, v.reserved+n
			return nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrExists):
			v.valid = false // changed elsewhere: read and scan again
			if err := sleepCtx(ctx, rand.N(quotaBackoff)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("jobs: quota: %w", err)
		}
	}
	return fmt.Errorf("%w: the quota of this key changed %d times while reserving; retry", ErrBusy, maxQuotaRetries)
}

// release gives n reserved bytes of owner back.
func (m *Manager) release(ctx context.Context, owner string, n int64) {
	if n <= 0 {
		return
	}
	kv := m.st.Quota
	for range maxQuotaRetries {
		val, rev, err := kv.Get(ctx, quotaKey(owner))
		if errors.Is(err, ErrNotFound) {
			return // expired (QuotaTTL): nothing to give back
		}
		if err != nil {
			m.log.Warn("quota: give back a reservation", "err", err)
			return
		}
		var rec quotaRecord
		_ = json.Unmarshal(val, &rec)
		rec.Reserved = max(rec.Reserved-n, 0)
		val, _ = json.Marshal(rec)
		if _, err = kv.Update(ctx, quotaKey(owner), val, rev); err == nil {
			return
		}
		if !errors.Is(err, ErrConflict) {
			m.log.Warn("quota: give back a reservation", "err", err)
			return
		}
		if sleepCtx(ctx, rand.N(quotaBackoff)) != nil {
			return
		}
	}
	m.log.Warn("quota: give back a reservation: too many conflicts", "owner", owner, "bytes", n)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
