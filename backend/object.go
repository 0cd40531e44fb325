// Package backend turns IR into eBPF: instructions through cilium/ebpf's asm
// package with register allocation, maps with BTF, an ELF object that loads
// with cilium/ebpf, libbpf (bpftool) and iproute2, and a listing that shows the
// CUE position of every instruction. It never touches the kernel.
package backend

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// License is the license string placed in every object. The helpers ebpfc
// calls need no GPL, but a dual license keeps every helper available.
const License = "Dual MIT/GPL"

// Program is one compiled program.
//
// Instructions that load a map pointer carry the map's name as their
// reference (asm.LoadMapPtr(r, 0).WithReference(name)); the ELF writer turns
// those into relocations. Every instruction carries the source.Pos it came
// from through WithSource.
type Program struct {
	Name    string
	Section string
	Type    ebpf.ProgramType
	Insns   asm.Instructions
	Pos     source.Pos
}

// Object is everything compiled for one node.
type Object struct {
	Programs []*Program // in module order
	Maps     []*ir.Map  // sorted by name
	License  string
}
