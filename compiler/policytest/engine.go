package policytest

import (
	"encoding/binary"
	"fmt"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
)

// datapath is one node's programs and maps, loaded once for a whole run.
type datapath interface {
	// run runs the tc program prog on an Ethernet frame and returns its
	// return value and the frame as the program left it.
	run(prog string, frame []byte) (ret uint32, out []byte, err error)
	// counters returns the packet counts of a per-CPU statistics array,
	// by index, summed over CPUs; nil when the node has no such map.
	counters(mapName string) ([]uint64, error)
	close()
}

// chooseEngine resolves auto: the kernel when it can load and run a
// program here, the interpreter otherwise, with a note saying why.
func chooseEngine(e Engine) (Engine, string, error) {
	switch e {
	case EngineVM:
		return EngineVM, "", nil
	case EngineKernel:
		if err := kernelUsable(); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrKernelUnavailable, err)
		}
		return EngineKernel, "", nil
	case EngineAuto, "":
		if err := kernelUsable(); err != nil {
			return EngineVM, err.Error(), nil
		}
		return EngineKernel, "", nil
	}
	return "", "", fmt.Errorf("unknown engine %q: want kernel, vm or auto", e)
}

// vmDatapath runs a node in ebpfc's interpreter, with the maps the kernel
// loader would give it (vm/artifact).
type vmDatapath struct {
	m *vm.Machine
}

func loadVM(a *compiler.Artifacts) (datapath, error) {
	art, err := artifact.Parse(a.Node, a.Files)
	if err != nil {
		return nil, err
	}
	m, err := art.Machine(vm.Options{})
	if err != nil {
		return nil, err
	}
	return &vmDatapath{m: m}, nil
}

func (d *vmDatapath) run(prog string, frame []byte) (uint32, []byte, error) {
	res, err := d.m.Run(prog, vm.NewSKB(frame))
	if err != nil {
		return 0, nil, err
	}
	return uint32(res.Return), res.Packet, nil
}

func (d *vmDatapath) counters(name string) ([]uint64, error) {
	mp := d.m.Map(name)
	if mp == nil {
		return nil, nil
	}
	var out []uint64
	for _, e := range mp.Entries() {
		if len(e.Key) != 4 {
			return nil, fmt.Errorf("map %s: key of %d bytes, want a 4-byte index", name, len(e.Key))
		}
		i := int(binary.LittleEndian.Uint32(e.Key))
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i] = sumPackets(e.Values)
	}
	return out, nil
}

func (d *vmDatapath) close() {}

// sumPackets adds up the packets field (the first u64) of each CPU's
// {packets, bytes} value.
func sumPackets(vals [][]byte) uint64 {
	var n uint64
	for _, v := range vals {
		if len(v) >= 8 {
			n += binary.LittleEndian.Uint64(v)
		}
	}
	return n
}
