package workflows

import (
	"fmt"
	"testing"
)

// The dedupe window holds the last maxSeen ids, oldest first, across the window's edge and
// after a continue-as-new (a run starts from the carried list, whose capacity is its length).
func TestSeenWindowKeepsTheLastMaxSeenIDs(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("iauth_%06d", i) }
	wf := &agentCard{st: &State{}}
	for i := range maxSeen + 10 {
		if wf.hasSeen(id(i)) {
			t.Fatalf("%s seen before it was marked", id(i))
		}
		wf.markSeen(id(i))
	}
	if len(wf.st.Seen) != maxSeen || wf.st.Seen[0] != id(10) || wf.st.Seen[maxSeen-1] != id(maxSeen+9) {
		t.Fatalf("window: %d ids from %s to %s", len(wf.st.Seen), wf.st.Seen[0], wf.st.Seen[len(wf.st.Seen)-1])
	}
	for i := range maxSeen + 10 {
		if want := i >= 10; wf.hasSeen(id(i)) != want {
			t.Errorf("hasSeen(%s) = %v, want %v", id(i), !want, want)
		}
	}

	carried := append([]string(nil), wf.st.Seen...) // as decoded from continue-as-new input
	next := &agentCard{st: &State{Seen: carried[:len(carried):len(carried)]}}
	for i := range 100 {
		next.markSeen(id(maxSeen + 10 + i))
	}
	if len(next.st.Seen) != maxSeen || cap(next.st.Seen) > maxSeen {
		t.Errorf("after continue-as-new: len %d cap %d, want both at most %d", len(next.st.Seen), cap(next.st.Seen), maxSeen)
	}
	if next.hasSeen(id(10)) || !next.hasSeen(id(110)) || !next.hasSeen(id(maxSeen+109)) {
		t.Error("the carried window did not move by the 100 new ids")
	}
}

// BenchmarkSeenFullWindow is the cost of checking and recording one new event id once the
// window is full: a scan of maxSeen ids, no allocation.
func BenchmarkSeenFullWindow(b *testing.B) {
	wf := &agentCard{st: &State{}}
	for i := range maxSeen {
		wf.markSeen(fmt.Sprintf("iauth_1P%024d", i))
	}
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("iauth_2P%024d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		if !wf.hasSeen(id) {
			wf.markSeen(id)
		}
	}
}
