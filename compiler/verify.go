package compiler

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/verifier"
)

// VerifierCollection describes obj for the static verifier: its programs
// and its maps as the ELF object declares them (program arrays with their
// slots).
func VerifierCollection(obj *backend.Object) *verifier.Collection {
	c := &verifier.Collection{}
	for _, m := range obj.Maps {
		s := backend.MapSpec(m)
		c.Maps = append(c.Maps, &verifier.Map{
			Name: m.Name, Type: s.Type, KeySize: s.KeySize, ValueSize: s.ValueSize,
			MaxEntries: s.MaxEntries, Flags: s.Flags, Slots: m.Slots,
		})
	}
	for _, p := range obj.Programs {
		c.Programs = append(c.Programs, &verifier.Program{
			Name: p.Name, Type: p.Type, AttachType: attachTypeOf(p), Insns: p.Insns,
		})
	}
	return c
}

// sockAddrAttach is the attach type the loader derives from a cgroup
// socket-address program's section, as libbpf and cilium/ebpf do.
var sockAddrAttach = map[string]ebpf.AttachType{
	"cgroup/bind4":        ebpf.AttachCGroupInet4Bind,
	"cgroup/bind6":        ebpf.AttachCGroupInet6Bind,
	"cgroup/connect4":     ebpf.AttachCGroupInet4Connect,
	"cgroup/connect6":     ebpf.AttachCGroupInet6Connect,
	"cgroup/sendmsg4":     ebpf.AttachCGroupUDP4Sendmsg,
	"cgroup/sendmsg6":     ebpf.AttachCGroupUDP6Sendmsg,
	"cgroup/recvmsg4":     ebpf.AttachCGroupUDP4Recvmsg,
	"cgroup/recvmsg6":     ebpf.AttachCGroupUDP6Recvmsg,
	"cgroup/getpeername4": ebpf.AttachCgroupInet4GetPeername,
	"cgroup/getpeername6": ebpf.AttachCgroupInet6GetPeername,
	"cgroup/getsockname4": ebpf.AttachCgroupInet4GetSockname,
	"cgroup/getsockname6": ebpf.AttachCgroupInet6GetSockname,
}

func attachTypeOf(p *backend.Program) ebpf.AttachType {
	if p.Type != ebpf.CGroupSockAddr {
		return ebpf.AttachNone
	}
	return sockAddrAttach[p.Section]
}

// verifyObject runs the static verifier on every program of obj. A
// rejected program is a bug in ebpfc, not in the configuration: the error
// names the program, the instruction (its number in datapath.s) and the
// CUE position it came from; Compile adds the node.
func verifyObject(obj *backend.Object) error {
	rep := verifier.Verify(VerifierCollection(obj))
	errs := rep.Errors()
	if len(errs) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ebpfc's static verifier rejected the generated code (%d problem(s)); this is a bug in ebpfc, please report it with the configuration:", len(errs))
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return &VerifyError{Errors: errs, msg: b.String()}
}

// VerifyError is the static verifier's rejection of generated code.
type VerifyError struct {
	Errors verifier.Errors
	msg    string
}

func (e *VerifyError) Error() string { return e.msg }

// verifyShapes runs the static verifier on the programs of obj that
// covered does not mark — the programs compiled on their own, among them
// every shape's template, and the stamped programs their template's
// verification does not cover (verifiedBySite) — and checks the chains of
// tail calls over all of obj's programs, as the verifier does. Any problem
// verifies the whole object, so that a rejection reads exactly as
// verifyObject reports it.
func verifyShapes(obj *backend.Object, covered []bool) error {
	edges, ok := tailCallEdges(obj)
	if !ok || !tailChainsBounded(edges) {
		return verifyObject(obj)
	}
	sub := &backend.Object{License: obj.License}
	in := make(map[string]bool)
	for i, p := range obj.Programs {
		if !covered[i] {
			sub.Programs = append(sub.Programs, p)
			in[p.Name] = true
		}
	}
	// Slots naming programs left out are empty here: their chains were
	// checked above.
	for _, m := range obj.Maps {
		if len(m.Slots) > 0 {
			c := *m
			c.Slots = make([]string, len(m.Slots))
			for i, s := range m.Slots {
				if in[s] {
					c.Slots[i] = s
				}
			}
			m = &c
		}
		sub.Maps = append(sub.Maps, m)
	}
	if err := verifyObject(sub); err != nil {
		return verifyObject(obj)
	}
	return nil
}

// tailCallEdges lists, for each program of obj, the programs its tail calls
// reach: every "call bpf_tail_call" must follow "r2 = map[A] ll; r3 = K"
// with no jump into the last two, as the backend emits a tail call, so the
// index is K on every path, as the verifier finds it. It reports false for
// any other tail call.
func tailCallEdges(obj *backend.Object) ([][]int, bool) {
	index := make(map[string]int, len(obj.Programs))
	for i, p := range obj.Programs {
		index[p.Name] = i
	}
	maps := make(map[string]*ir.Map, len(obj.Maps))
	for _, m := range obj.Maps {
		maps[m.Name] = m
	}
	edges := make([][]int, len(obj.Programs))
	for i, p := range obj.Programs {
		insns := p.Insns
		for k, ins := range insns {
			if !ins.OpCode.Class().IsJump() || ins.OpCode.JumpOp() != asm.Call || ins.Constant != int64(asm.FnTailCall) {
				continue
			}
			if k < 2 || ins.Symbol() != "" || insns[k-1].Symbol() != "" {
				return nil, false
			}
			mov, ld := insns[k-1], insns[k-2]
			mop := mov.OpCode
			if mop.Class() != asm.ALU64Class || mop.ALUOp() != asm.Mov || mop.Source() != asm.ImmSource || mov.Dst != asm.R3 ||
				!ld.IsLoadFromMap() || ld.Dst != asm.R2 {
				return nil, false
			}
			m := maps[ld.Reference()]
			if m == nil || m.Type != ir.MapProgArray {
				return nil, false
			}
			slot := mov.Constant
			if slot < 0 || slot >= int64(len(m.Slots)) || m.Slots[slot] == "" {
				continue // an empty slot: the call falls through
			}
			to, ok := index[m.Slots[slot]]
			if !ok {
				return nil, false
			}
			edges[i] = append(edges[i], to)
		}
	}
	return edges, true
}

// tailChainsBounded reports whether no chain of tail calls is longer than
// the kernel performs and none is a cycle.
func tailChainsBounded(edges [][]int) bool {
	const unbounded = 1 << 30
	depth := make([]int, len(edges))
	state := make([]uint8, len(edges)) // 0 new, 1 on the path, 2 done
	var visit func(p int) int
	visit = func(p int) int {
		switch state[p] {
		case 1:
			return unbounded
		case 2:
			return depth[p]
		}
		state[p] = 1
		best := 0
		for _, q := range edges[p] {
			d := visit(q)
			if d < unbounded {
				d++
			}
			best = max(best, d)
		}
		state[p], depth[p] = 2, best
		return best
	}
	for p := range edges {
		if visit(p) > verifier.MaxTailCallChain {
			return false
		}
	}
	return true
}
