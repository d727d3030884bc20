package completions_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"courier/internal/completions"
)

// BenchmarkList lists the first page (20) of an owner's 1,000 stored
// completions (beside another owner's 200), unfiltered and by metadata,
// with answers of about 100 bytes and of about 20 KB: the cost of one GET
// /v1/chat/completions on the store, which reads the owner's index
// entries and then the page's records only, so it should not grow with
// the answers' size.
func BenchmarkList(b *testing.B) {
	for _, size := range []int{100, 20 << 10} {
		s, _ := openStore(b, b.TempDir(), 0)
		answer := strings.Repeat("x", size)
		for owner, n := range map[string]int{"alice": 1000, "bob": 200} {
			for i := range n {
				id := fmt.Sprintf("chatcmpl-%s-%04d", owner, i)
				c := &completions.Completion{ID: id, Owner: owner, Model: "m", Metadata: map[string]string{"i": fmt.Sprint(i % 10)},
					Response: json.RawMessage(fmt.Sprintf(`{"id":%q,"object":"chat.completion","choices":[{"message":{"content":%q}}]}`, id, answer))}
				if err := s.Put(b.Context(), c, []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, f := range []struct {
			name string
			f    completions.Filter
		}{
			{"page", completions.Filter{Page: completions.Page{Limit: 20}}},
			{"metadata", completions.Filter{Metadata: map[string]string{"i": "3"}, Page: completions.Page{Limit: 20}}},
		} {
			b.Run(fmt.Sprintf("%s/answer=%dB", f.name, size), func(b *testing.B) {
				for b.Loop() {
					list, _, err := s.List(b.Context(), "alice", f.f)
					if err != nil || len(list) != 20 {
						b.Fatal(len(list), err)
					}
				}
			})
		}
	}
}
