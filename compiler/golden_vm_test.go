//go:build linux

package compiler_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
)

// Verdicts of tc and XDP programs.
const (
	vmTCOK    = 0
	vmTCShot  = 2
	vmXDPDrop = 1
	vmXDPPass = 2
)

// goldenMachines compiles a golden case and builds an interpreter per node,
// in node order.
func goldenMachines(t *testing.T, c *goldenCase, opts vm.Options) ([]*compiler.Artifacts, map[string]*vm.Machine, []string) {
	t.Helper()
	_, arts, err := compileCase(c, c.names)
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]*vm.Machine{}
	var order []string
	for _, a := range arts {
		va, err := artifact.Parse(a.Node, a.Files)
		if err != nil {
			t.Fatal(err)
		}
		m, err := va.Machine(opts)
		if err != nil {
			t.Fatalf("node %s: the interpreter refused the object: %v", a.Node, err)
		}
		machines[a.Node] = m
		order = append(order, a.Node)
	}
	return arts, machines, order
}

// findProgram resolves a packet line's PROGRAM (or NODE/PROGRAM) to a node.
func findProgram(spec string, order []string, has func(node, prog string) bool) (node, prog string, ok bool) {
	node, prog, qualified := strings.Cut(spec, "/")
	if !qualified {
		prog = spec
		for _, n := range order {
			if has(n, prog) {
				return n, prog, true
			}
		}
		return "", prog, false
	}
	return node, prog, has(node, prog)
}

// vmContext is the context BPF_PROG_TEST_RUN gives a program of typ for pkt.
func vmContext(typ ebpf.ProgramType, pkt []byte) vm.Context {
	if typ == ebpf.XDP {
		return &vm.XDP{Packet: pkt, IngressIfindex: 1}
	}
	return vm.NewSKB(pkt)
}

// statPackets sums the first u64 (packets) of a per-CPU stats entry.
func statPackets(m *vm.Machine, mapName string, key uint32) (uint64, error) {
	mp := m.Map(mapName)
	if mp == nil {
		return 0, fmt.Errorf("no map %s", mapName)
	}
	vals, err := mp.LookupPerCPU(binary.LittleEndian.AppendUint32(nil, key))
	if err != nil {
		return 0, fmt.Errorf("%s[%d]: %w", mapName, key, err)
	}
	var sum uint64
	for _, v := range vals {
		sum += binary.LittleEndian.Uint64(v)
	}
	return sum, nil
}

// TestGoldenVM runs every golden case's packets through the interpreter and
// checks the verdicts, rule cookies and drop reasons the case expects, as
// TestGoldenKernel does in the kernel. It needs no kernel.
func TestGoldenVM(t *testing.T) {
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			cases, err := packettest.ParseAll(c.packets)
			if err != nil {
				t.Fatalf("%s: packets: %v", c.path, err)
			}
			if len(cases) == 0 {
				return
			}
			arts, machines, order := goldenMachines(t, c, vm.Options{})
			reasons := arts[0].Lowered.DropReasons
			for _, pc := range cases {
				node, prog, ok := findProgram(pc.Program, order, func(n, p string) bool {
					m := machines[n]
					if m == nil {
						return false
					}
					_, ok := m.ProgramType(p)
					return ok
				})
				if !ok {
					t.Errorf("%s: no program %q on any node", c.path, pc.Program)
					continue
				}
				if err := runVMCase(machines[node], prog, reasons, pc); err != nil {
					t.Errorf("%s: node %s: %v", c.path, node, err)
				}
			}
		})
	}
}

func runVMCase(m *vm.Machine, prog string, reasons []string, pc *packettest.Case) error {
	pkt, err := pc.Build()
	if err != nil {
		return err
	}
	typ, _ := m.ProgramType(prog)
	reason := -1
	if pc.Reason != "" {
		reason = slices.Index(reasons, pc.Reason)
		if reason < 0 {
			return fmt.Errorf("%q: unknown drop reason %q (have %q)", pc.Line, pc.Reason, reasons)
		}
	}
	count := func() (rule, drop uint64, err error) {
		if pc.Cookie >= 0 {
			if rule, err = statPackets(m, "rule_stats", uint32(pc.Cookie)); err != nil {
				return
			}
		}
		if reason >= 0 {
			drop, err = statPackets(m, "drop_stats", uint32(reason))
		}
		return
	}
	r0, d0, err := count()
	if err != nil {
		return fmt.Errorf("%q: %w", pc.Line, err)
	}
	res, err := m.Run(prog, vmContext(typ, pkt))
	if err != nil {
		return fmt.Errorf("%q: %w", pc.Line, err)
	}
	pass, drop := uint64(vmTCOK), uint64(vmTCShot)
	if typ == ebpf.XDP {
		pass, drop = vmXDPPass, vmXDPDrop
	}
	switch {
	case pc.Pass && res.Return != pass:
		return fmt.Errorf("%q: got return code %d, want pass (%d)", pc.Line, res.Return, pass)
	case !pc.Pass && res.Return != drop:
		return fmt.Errorf("%q: got return code %d, want drop (%d)", pc.Line, res.Return, drop)
	}
	r1, d1, err := count()
	if err != nil {
		return fmt.Errorf("%q: %w", pc.Line, err)
	}
	if pc.Cookie >= 0 && r1 != r0+1 {
		return fmt.Errorf("%q: rule cookie %d counted %d packets, want 1", pc.Line, pc.Cookie, r1-r0)
	}
	if reason >= 0 && d1 != d0+1 {
		return fmt.Errorf("%q: drop reason %q counted %d packets, want 1", pc.Line, pc.Reason, d1-d0)
	}
	return nil
}

// kernelSnapshot reads every map of coll except program arrays (whose
// values are program IDs in the kernel and names in the interpreter) and
// ring buffers, in the interpreter's Snapshot form.
func kernelSnapshot(coll *ebpf.Collection) (vm.Snapshot, error) {
	s := vm.Snapshot{}
	for name, m := range coll.Maps {
		switch m.Type() {
		case ebpf.ProgramArray, ebpf.RingBuf:
			continue
		}
		perCPU := m.Type() == ebpf.PerCPUArray || m.Type() == ebpf.PerCPUHash || m.Type() == ebpf.LRUCPUHash
		var entries []vm.Entry
		it := m.Iterate()
		var key []byte
		if perCPU {
			var vals [][]byte
			for it.Next(&key, &vals) {
				e := vm.Entry{Key: slices.Clone(key)}
				for _, v := range vals {
					e.Values = append(e.Values, slices.Clone(v))
				}
				entries = append(entries, e)
			}
		} else {
			var val []byte
			for it.Next(&key, &val) {
				entries = append(entries, vm.Entry{Key: slices.Clone(key), Values: [][]byte{slices.Clone(val)}})
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("map %s: %w", name, err)
		}
		slices.SortFunc(entries, func(a, b vm.Entry) int { return bytes.Compare(a.Key, b.Key) })
		s[name] = entries
	}
	return s, nil
}

// vmSnapshot is the interpreter's snapshot restricted to the maps
// kernelSnapshot reads.
func vmSnapshot(m *vm.Machine) vm.Snapshot {
	s := m.Snapshot()
	for _, mp := range m.Maps() {
		switch mp.Type() {
		case ebpf.ProgramArray, ebpf.RingBuf:
			delete(s, mp.Name())
		}
	}
	return s
}

func describeChanges(cs []vm.Change) string {
	if len(cs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	return b.String()
}

// TestGoldenVMKernel is the differential test: every packet of every golden
// case runs in the kernel (BPF_PROG_TEST_RUN) and in the interpreter, which
// must agree on the return value, the output packet and every map change.
// The test thread is pinned to CPU 0 so that the kernel's per-CPU map
// changes land in CPU 0's slot, where the interpreter (running as CPU 0 of
// as many CPUs as the kernel has) puts them; per-CPU values are compared
// slot by slot.
func TestGoldenVMKernel(t *testing.T) {
	testenv.RequireKernel(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			cases, err := packettest.ParseAll(c.packets)
			if err != nil {
				t.Fatalf("%s: packets: %v", c.path, err)
			}
			if len(cases) == 0 {
				return
			}
			pinToCPU0(t)
			arts, machines, order := goldenMachines(t, c, vm.Options{NumCPU: ncpu, CPU: 0})
			kernel := map[string]*ebpf.Collection{}
			for _, a := range arts {
				ra, err := runtime.ParseArtifacts(a.Node, a.Files)
				if err != nil {
					t.Fatal(err)
				}
				dp, err := runtime.Load(ra)
				if err != nil {
					t.Fatalf("node %s: kernel rejected the object: %v", a.Node, err)
				}
				t.Cleanup(dp.Close)
				kernel[a.Node] = dp.Collection
				ks, err := kernelSnapshot(dp.Collection)
				if err != nil {
					t.Fatal(err)
				}
				if d := vm.Diff(ks, vmSnapshot(machines[a.Node])); len(d) > 0 {
					t.Errorf("%s: node %s: initial map contents differ (kernel -> interpreter):\n%s", c.path, a.Node, describeChanges(d))
				}
			}
			for _, pc := range cases {
				node, prog, ok := findProgram(pc.Program, order, func(n, p string) bool {
					return kernel[n] != nil && kernel[n].Programs[p] != nil
				})
				if !ok {
					t.Errorf("%s: no program %q on any node", c.path, pc.Program)
					continue
				}
				var man *compiler.Manifest
				for _, a := range arts {
					if a.Node == node {
						man = a.Manifest
					}
				}
				if err := diffCase(kernel[node], machines[node], man, prog, pc); err != nil {
					t.Errorf("%s: node %s: %v", c.path, node, err)
				}
				compared++
			}
		})
	}
	t.Logf("%d packets compared between the kernel and the interpreter", compared)
}

// pinToCPU0 runs the calling goroutine on one thread that runs only on
// CPU 0. The thread is not unlocked: when the test's goroutine ends, the
// runtime discards it rather than reuse a thread with a narrowed affinity.
func pinToCPU0(t *testing.T) {
	goruntime.LockOSThread()
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pinning the test thread to CPU 0: %v", err)
	}
}

func diffCase(coll *ebpf.Collection, m *vm.Machine, man *compiler.Manifest, prog string, pc *packettest.Case) error {
	pkt, err := pc.Build()
	if err != nil {
		return err
	}
	kp := coll.Programs[prog]
	kBefore, err := kernelSnapshot(coll)
	if err != nil {
		return err
	}
	vBefore := vmSnapshot(m)
	out := make([]byte, len(pkt)+512)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	kret, err := kp.Run(opts)
	if err != nil {
		return fmt.Errorf("%q: kernel test run: %w", pc.Line, err)
	}
	res, err := m.Run(prog, vmContext(kp.Type(), pkt))
	if err != nil {
		return fmt.Errorf("%q: interpreter: %w", pc.Line, err)
	}
	var errs []error
	if uint64(kret) != res.Return {
		errs = append(errs, fmt.Errorf("return value: kernel %d, interpreter %d", kret, res.Return))
	}
	if !bytes.Equal(opts.DataOut, res.Packet) {
		errs = append(errs, fmt.Errorf("output packet differs:\n  kernel      %x\n  interpreter %x", opts.DataOut, res.Packet))
	}
	kAfter, err := kernelSnapshot(coll)
	if err != nil {
		return err
	}
	vAfter := vmSnapshot(m)
	for _, sn := range []vm.Snapshot{kBefore, kAfter, vBefore, vAfter} {
		maskClock(sn, man)
	}
	kd, vd := vm.Diff(kBefore, kAfter), vm.Diff(vBefore, vAfter)
	if fmt.Sprint(kd) != fmt.Sprint(vd) {
		errs = append(errs, fmt.Errorf("map changes differ:\n kernel:\n%s interpreter:\n%s", describeChanges(kd), describeChanges(vd)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%q: %w", pc.Line, errors.Join(errs...))
	}
	return nil
}

// maskClock zeroes the value fields named "expires" (conntrack deadlines,
// read from CLOCK_MONOTONIC) in s, as the interpreter's clock is not the
// kernel's. Everything else in those entries is still compared.
func maskClock(s vm.Snapshot, man *compiler.Manifest) {
	for _, mp := range man.Maps {
		for _, f := range mp.Value.Fields {
			if f.Name != "expires" {
				continue
			}
			for _, e := range s[mp.Name] {
				for _, v := range e.Values {
					if f.Offset+f.Size <= len(v) {
						clear(v[f.Offset : f.Offset+f.Size])
					}
				}
			}
		}
	}
}
