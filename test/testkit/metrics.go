package testkit

import dto "github.com/prometheus/client_model/go"

// Series returns the value of the one series of name whose labels include labels (name,
// value pairs), and how many matched: a histogram's value is its sample count.
func Series(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, int) {
	var v float64
	n := 0
next:
	for _, m := range mfs[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		n++
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		default:
			v = m.GetUntyped().GetValue()
		}
	}
	return v, n
}
