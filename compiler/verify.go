package compiler

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/backend"
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
