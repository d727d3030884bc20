package natsbus

import (
	"testing"
	"testing/synctest"
	"time"
)

// lateAt records when its hold ended.
type lateAt struct{ at []time.Duration }

var holdStart time.Time

func (l *lateAt) acceptLate() { l.at = append(l.at, time.Since(holdStart)) }

// TestAcceptHoldsEndInOrder checks that one timer ends every hold
// acceptHold after it began, in order, also holds added while the timer is
// set for an earlier one, and that it is set again for holds after a quiet
// spell.
func TestAcceptHoldsEndInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h acceptHolds
		holdStart = time.Now()
		a, b, c, d := &lateAt{}, &lateAt{}, &lateAt{}, &lateAt{}
		h.add(a)
		time.Sleep(300 * time.Microsecond)
		h.add(b)
		h.add(c)
		time.Sleep(5 * time.Millisecond)
		h.add(d)
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
		ms := time.Millisecond
		for _, x := range []struct {
			name string
			l    *lateAt
			want time.Duration
		}{{"a", a, ms}, {"b", b, 1300 * time.Microsecond}, {"c", c, 1300 * time.Microsecond}, {"d", d, 6300 * time.Microsecond}} {
			if len(x.l.at) != 1 || x.l.at[0] != x.want {
				t.Errorf("hold %s ended at %v, want once at %v", x.name, x.l.at, x.want)
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.q) != 0 || h.armed {
			t.Errorf("after the holds: %d queued, armed %v", len(h.q), h.armed)
		}
	})
}
