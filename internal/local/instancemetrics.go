package local

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// instanceCollector exports what the supervisor measures of each revision's instances beside
// the proxy's request metrics, labelled rollout, revision and role. The counters are sums over
// every instance the revision ran since ramp started (instances that stopped included), so
// they never go down while ramp runs.
type instanceCollector struct{ c *Controller }

var (
	instLabels         = []string{"rollout", "revision", "role"}
	descInstExits      = prometheus.NewDesc("ramp_instance_exits_total", "Exits of the revision's processes on their own (not stopped by ramp): crashes and unexpected exits.", instLabels, nil)
	descInstRestarts   = prometheus.NewDesc("ramp_instance_restarts_total", "Restarts of the revision's processes after they exited on their own.", instLabels, nil)
	descInstProbeFails = prometheus.NewDesc("ramp_instance_probe_failures_total", "Failed readiness probes of the revision's instances.", instLabels, nil)
	descInstCPU        = prometheus.NewDesc("ramp_instance_cpu_seconds_total", "User and system CPU time of the revision's processes (their main process, read from /proc at each probe).", instLabels, nil)
	descInstMemory     = prometheus.NewDesc("ramp_instance_memory_bytes", "Resident memory of the revision's running processes (their main process, read from /proc at each probe).", instLabels, nil)
	descInstances      = prometheus.NewDesc("ramp_instances", "Instances of the revision, terminating ones included.", instLabels, nil)
)

func (ic instanceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInstExits, descInstRestarts, descInstProbeFails, descInstCPU, descInstMemory, descInstances} {
		ch <- d
	}
}

func (ic instanceCollector) Collect(ch chan<- prometheus.Metric) {
	rollouts, err := ic.c.store.ListRollouts()
	if err != nil {
		ic.c.log.Error("list rollouts for /metrics", "err", err)
		return
	}
	for i := range rollouts {
		r := &rollouts[i]
		for rev, t := range ic.c.sup.Totals(r.Name) {
			lv := []string{r.Name, strconv.FormatInt(rev, 10), string(roleOf(r, rev))}
			ch <- prometheus.MustNewConstMetric(descInstExits, prometheus.CounterValue, float64(t.Exits), lv...)
			ch <- prometheus.MustNewConstMetric(descInstRestarts, prometheus.CounterValue, float64(t.Restarts), lv...)
			ch <- prometheus.MustNewConstMetric(descInstProbeFails, prometheus.CounterValue, float64(t.ProbeFailures), lv...)
			ch <- prometheus.MustNewConstMetric(descInstCPU, prometheus.CounterValue, t.CPUSeconds, lv...)
			ch <- prometheus.MustNewConstMetric(descInstMemory, prometheus.GaugeValue, float64(t.MemoryBytes), lv...)
			ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(t.Instances), lv...)
		}
	}
}
