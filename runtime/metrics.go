//go:build linux

package runtime

// Prometheus metrics, read from the kernel at each scrape: per-rule packet
// and byte counters (rule_stats, summed over CPUs), drops by reason
// (drop_stats), map fill, and the daemon's own health.

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebpfc/ebpfc/compiler"
)

// The counter maps the datapath keeps.
const (
	ruleStatsMap = "rule_stats"
	dropStatsMap = "drop_stats"
)

var (
	descRulePackets = prometheus.NewDesc("ebpfc_rule_packets_total", "Packets decided by each rule (or endpoint default), summed over CPUs.",
		[]string{"cookie", "kind", "policy", "direction", "rule", "endpoint", "position"}, nil)
	descRuleBytes = prometheus.NewDesc("ebpfc_rule_bytes_total", "Bytes decided by each rule (or endpoint default), summed over CPUs.",
		[]string{"cookie", "kind", "policy", "direction", "rule", "endpoint", "position"}, nil)
	descDropPackets = prometheus.NewDesc("ebpfc_drop_packets_total", "Packets dropped, by reason.", []string{"reason"}, nil)
	descDropBytes   = prometheus.NewDesc("ebpfc_drop_bytes_total", "Bytes dropped, by reason.", []string{"reason"}, nil)
	descMapEntries  = prometheus.NewDesc("ebpfc_map_entries", "Entries in each hash or trie map.", []string{"map"}, nil)
	descMapMax      = prometheus.NewDesc("ebpfc_map_max_entries", "Capacity of each map.", []string{"map"}, nil)
	descPrograms    = prometheus.NewDesc("ebpfc_programs", "Programs of the running datapath.", nil, nil)
	descAttached    = prometheus.NewDesc("ebpfc_attachments", "Attachments, by state.", []string{"state"}, nil)
	descGeneration  = prometheus.NewDesc("ebpfc_config_generation", "Generation of the running configuration (counts applies that changed something).", nil, nil)
	descApplies     = prometheus.NewDesc("ebpfc_applies_total", "Applies attempted.", nil, nil)
	descFailures    = prometheus.NewDesc("ebpfc_apply_failures_total", "Applies that failed (the last good datapath kept running).", nil, nil)
	descLastError   = prometheus.NewDesc("ebpfc_last_apply_failed", "1 when the latest apply failed, else 0.", nil, nil)
	descLastErrTime = prometheus.NewDesc("ebpfc_last_apply_error_timestamp_seconds", "When the latest failed apply happened (0: none since the last good one).", nil, nil)
	descSync        = prometheus.NewDesc("ebpfc_last_apply_seconds", "Duration of the latest successful apply, by phase.", []string{"phase"}, nil)
	descEvents      = prometheus.NewDesc("ebpfc_events_total", "Events read from the ring buffer, by outcome.", []string{"outcome"}, nil)
)

// Collector returns the daemon's Prometheus collector.
func (d *Daemon) Collector() prometheus.Collector { return (*collector)(d) }

type collector Daemon

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRulePackets, descRuleBytes, descDropPackets, descDropBytes, descMapEntries, descMapMax,
		descPrograms, descAttached, descGeneration, descApplies, descFailures, descLastError, descLastErrTime, descSync, descEvents} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := (*Daemon)(c)
	decoded, undecodable := d.events.counts()
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(decoded), "decoded")
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(undecodable), "undecodable")
	d.mu.Lock()
	defer d.mu.Unlock()
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	gauge(descGeneration, float64(d.state.Generation))
	counter(descApplies, float64(d.applies))
	counter(descFailures, float64(d.failures))
	if d.lastErr != nil {
		gauge(descLastError, 1)
		gauge(descLastErrTime, float64(d.lastErr.Time.Unix()))
	} else {
		gauge(descLastError, 0)
		gauge(descLastErrTime, 0)
	}
	gauge(descPrograms, float64(len(d.state.Programs)))
	gauge(descAttached, float64(len(d.state.Attachments)), "attached")
	gauge(descAttached, float64(len(d.pending)), "pending")
	if r := d.lastResult; r != nil {
		gauge(descSync, r.CompileTime.Seconds(), "compile")
		gauge(descSync, r.LoadTime.Seconds(), "load")
		gauge(descSync, r.SyncTime.Seconds(), "sync")
		gauge(descSync, r.TotalTime.Seconds(), "total")
	}
	for _, name := range sortedKeys(d.maps) {
		m := d.maps[name]
		gauge(descMapMax, float64(m.MaxEntries()), name)
		if n := countEntries(m); n >= 0 {
			gauge(descMapEntries, float64(n), name)
		}
	}
	if d.manifest == nil {
		return
	}
	if m := d.maps[ruleStatsMap]; m != nil {
		for _, ck := range d.manifest.Cookies {
			pk, by, err := perCPUStats(m, ck.ID)
			if err != nil {
				continue
			}
			labels := []string{strconv.FormatUint(uint64(ck.ID), 10), ck.Kind, ck.Policy, ck.Direction, ruleLabel(ck), ck.Endpoint, ck.Position}
			counter(descRulePackets, float64(pk), labels...)
			counter(descRuleBytes, float64(by), labels...)
		}
	}
	if m := d.maps[dropStatsMap]; m != nil {
		for i, reason := range d.manifest.DropReasons {
			if i == 0 {
				continue // "none"
			}
			pk, by, err := perCPUStats(m, uint32(i))
			if err != nil {
				continue
			}
			counter(descDropPackets, float64(pk), reason)
			counter(descDropBytes, float64(by), reason)
		}
	}
}

func ruleLabel(c compiler.ManifestCookie) string {
	if c.Rule < 0 {
		return ""
	}
	return strconv.Itoa(c.Rule)
}

// perCPUStats sums a {packets u64, bytes u64} value of a per-CPU array
// over every CPU.
func perCPUStats(m *ebpf.Map, key uint32) (packets, bytes uint64, err error) {
	size := int(m.ValueSize())
	if size < 16 {
		return 0, 0, fmt.Errorf("map %s: value of %d bytes, want packets and bytes", m, size)
	}
	vals := reflect.New(reflect.SliceOf(reflect.ArrayOf(size, reflect.TypeFor[byte]())))
	if err := m.Lookup(key, vals.Interface()); err != nil {
		return 0, 0, err
	}
	s := vals.Elem()
	for i := range s.Len() {
		b := s.Index(i).Slice(0, size).Bytes()
		packets += binary.LittleEndian.Uint64(b[0:8])
		bytes += binary.LittleEndian.Uint64(b[8:16])
	}
	return packets, bytes, nil
}
