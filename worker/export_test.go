package worker

// PacerRate is the process's share of the pace, in calls a second.
func (w *Workers) PacerRate() float64 { return w.pacer.Rate() }
