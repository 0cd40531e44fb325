//go:build linux

package packettest

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Verdicts of tc and XDP programs.
const (
	tcOK    = 0
	tcShot  = 2
	xdpDrop = 1
	xdpPass = 2
)

// Run runs c through prog with BPF_PROG_TEST_RUN and checks the verdict and,
// when the case asks, that the packet was counted against its rule cookie in
// ruleStats and its drop reason (an index into reasons) in dropStats.
func Run(prog *ebpf.Program, ruleStats, dropStats *ebpf.Map, reasons []string, c *Case) error {
	pkt, err := c.Build()
	if err != nil {
		return err
	}
	before, err := counts(ruleStats, dropStats, c, reasons)
	if err != nil {
		return err
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		return fmt.Errorf("%q: test run: %w", c.Line, err)
	}
	pass, drop := uint32(tcOK), uint32(tcShot)
	if prog.Type() == ebpf.XDP {
		pass, drop = xdpPass, xdpDrop
	}
	switch {
	case c.Pass && ret != pass:
		return fmt.Errorf("%q: got return code %d, want pass (%d)", c.Line, ret, pass)
	case !c.Pass && ret != drop:
		return fmt.Errorf("%q: got return code %d, want drop (%d)", c.Line, ret, drop)
	}
	after, err := counts(ruleStats, dropStats, c, reasons)
	if err != nil {
		return err
	}
	if c.Cookie >= 0 && after[0] != before[0]+1 {
		return fmt.Errorf("%q: rule cookie %d counted %d packets, want 1", c.Line, c.Cookie, after[0]-before[0])
	}
	if c.Reason != "" && after[1] != before[1]+1 {
		return fmt.Errorf("%q: drop reason %q counted %d packets, want 1", c.Line, c.Reason, after[1]-before[1])
	}
	return nil
}

// counts returns the packet counters of c's cookie and drop reason, summed
// over CPUs.
func counts(ruleStats, dropStats *ebpf.Map, c *Case, reasons []string) ([2]uint64, error) {
	var out [2]uint64
	if c.Cookie >= 0 {
		n, err := packets(ruleStats, uint32(c.Cookie))
		if err != nil {
			return out, fmt.Errorf("%q: rule_stats[%d]: %w", c.Line, c.Cookie, err)
		}
		out[0] = n
	}
	if c.Reason != "" {
		idx := -1
		for i, r := range reasons {
			if r == c.Reason {
				idx = i
			}
		}
		if idx < 0 {
			return out, fmt.Errorf("%q: unknown drop reason %q (have %q)", c.Line, c.Reason, reasons)
		}
		n, err := packets(dropStats, uint32(idx))
		if err != nil {
			return out, fmt.Errorf("%q: drop_stats[%d]: %w", c.Line, idx, err)
		}
		out[1] = n
	}
	return out, nil
}

// packets sums the first u64 (packets) of a per-CPU stats value.
func packets(m *ebpf.Map, key uint32) (uint64, error) {
	if m == nil {
		return 0, fmt.Errorf("no such map")
	}
	var vals [][]byte
	if err := m.Lookup(key, &vals); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range vals {
		if len(v) >= 8 {
			sum += uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
				uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
		}
	}
	return sum, nil
}
