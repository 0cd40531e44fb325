//go:build linux

package policytest

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/runtime"
)

var (
	probeOnce sync.Once
	probeErr  error
)

// kernelUsable loads and test-runs a trivial tc program, once per process.
func kernelUsable() error {
	probeOnce.Do(func() { probeErr = probeKernel() })
	return probeErr
}

func probeKernel() error {
	// Kernels that account BPF memory to cgroups need no memlock limit;
	// on older ones a failure here shows up as a failure to load below.
	memlockErr := rlimit.RemoveMemlock()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	switch {
	case err != nil && errors.Is(err, os.ErrPermission):
		return errors.New("loading a BPF program is not permitted; run as root (or with CAP_BPF and CAP_NET_ADMIN)")
	case err != nil && memlockErr != nil:
		return fmt.Errorf("loading a BPF program: %w (raising the locked-memory limit failed too: %v)", err, memlockErr)
	case err != nil:
		return fmt.Errorf("loading a BPF program: %w", err)
	}
	defer prog.Close()
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)}); err != nil {
		return fmt.Errorf("running a BPF program with BPF_PROG_TEST_RUN: %w", err)
	}
	return nil
}

// kernelDatapath is a node's collection loaded into the kernel (not
// attached); programs run with BPF_PROG_TEST_RUN.
type kernelDatapath struct {
	dp *runtime.Datapath
}

func loadKernel(a *compiler.Artifacts) (datapath, error) {
	ra, err := runtime.ParseArtifacts(a.Node, a.Files)
	if err != nil {
		return nil, err
	}
	dp, err := runtime.Load(ra)
	if err != nil {
		return nil, err
	}
	return &kernelDatapath{dp: dp}, nil
}

// outSlack is room for a program that grows the packet.
const outSlack = 4096

func (d *kernelDatapath) run(prog string, frame []byte) (uint32, []byte, error) {
	p := d.dp.Collection.Programs[prog]
	if p == nil {
		return 0, nil, fmt.Errorf("no program %s in the loaded collection", prog)
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+outSlack)}
	ret, err := p.Run(opts)
	if err != nil {
		return 0, nil, err
	}
	return ret, opts.DataOut, nil
}

func (d *kernelDatapath) counters(name string) ([]uint64, error) {
	m := d.dp.Collection.Maps[name]
	if m == nil {
		return nil, nil
	}
	out := make([]uint64, m.MaxEntries())
	var vals [][]byte
	for i := range out {
		if err := m.Lookup(uint32(i), &vals); err != nil {
			return nil, fmt.Errorf("map %s[%d]: %w", name, i, err)
		}
		out[i] = sumPackets(vals)
	}
	return out, nil
}

func (d *kernelDatapath) close() { d.dp.Close() }
