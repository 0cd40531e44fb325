//go:build linux

package runtime

// Attaching programs to their hooks. Every attachment can be replaced
// atomically by a new program: TCX, XDP and cgroup attachments are BPF links
// (pinned, so they outlive the daemon) updated with link.Update; on kernels
// without TCX, tc programs are cls_bpf filters on a clsact qdisc, replaced
// in place with a netlink replace of the same filter.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attachment modes, as status shows them.
const (
	modeTCX        = "tcx"
	modeTCLegacy   = "tc-legacy"
	modeXDPNative  = "xdp-native"
	modeXDPGeneric = "xdp-generic"
	modeCgroup     = "cgroup"
)

// TC modes a daemon may be told to use.
const (
	TCModeAuto   = "auto"
	TCModeTCX    = "tcx"
	TCModeLegacy = "legacy"
)

// The cls_bpf filter ebpfd installs on a clsact qdisc when TCX is missing:
// one per direction and device, at a fixed priority and handle, so that a
// replace finds it.
const (
	legacyPriority = 1
	legacyHandle   = 0xebfc
)

// cgroupAttachTypes maps the cgroup hooks a manifest may name (as libbpf
// names their sections) to attach types.
var cgroupAttachTypes = map[string]ebpf.AttachType{
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
	"cgroup/bind4":        ebpf.AttachCGroupInet4Bind,
	"cgroup/bind6":        ebpf.AttachCGroupInet6Bind,
	"cgroup/post_bind4":   ebpf.AttachCGroupInet4PostBind,
	"cgroup/post_bind6":   ebpf.AttachCGroupInet6PostBind,
	"cgroup/sock_create":  ebpf.AttachCGroupInetSockCreate,
	"cgroup/sock_release": ebpf.AttachCgroupInetSockRelease,
	"cgroup_skb/ingress":  ebpf.AttachCGroupInetIngress,
	"cgroup_skb/egress":   ebpf.AttachCGroupInetEgress,
}

// isCgroupHook reports whether hook attaches to a cgroup.
func isCgroupHook(hook string) bool {
	return strings.HasPrefix(hook, "cgroup/") || strings.HasPrefix(hook, "cgroup_skb/")
}

// errNoDevice is an attachment to a device that does not exist (yet).
var errNoDevice = errors.New("no such device")

type attacher struct {
	pinDir string
	cgroup string
	tcMode string // TCModeAuto, TCModeTCX or TCModeLegacy
	// createdQdisc is called with a device on which a clsact qdisc was
	// created, so the state can record it.
	createdQdisc func(dev string)
}

func (at *attacher) linkPin(rec attachRecord) string {
	name := strings.NewReplacer("/", "_", ".", "_").Replace(rec.Hook)
	if !isCgroupHook(rec.Hook) {
		name += "_" + rec.Target
		if rec.Direction != "" {
			name += "_" + rec.Direction
		}
	}
	return filepath.Join(linksDir, name)
}

// attach attaches prog as rec asks and pins the link. It returns rec with
// its mode and pin filled in.
func (at *attacher) attach(rec attachRecord, prog *ebpf.Program) (attachRecord, error) {
	switch {
	case rec.Hook == "tc":
		ifc, err := netlink.LinkByName(rec.Target)
		if err != nil {
			return rec, fmt.Errorf("%s: %w", rec.Target, errNoDevice)
		}
		idx := ifc.Attrs().Index
		if at.tcMode != TCModeLegacy {
			typ := ebpf.AttachTCXIngress
			if rec.Direction == "egress" {
				typ = ebpf.AttachTCXEgress
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: typ})
			if err == nil {
				rec.Mode = modeTCX
				return rec, at.pinLink(&rec, l)
			}
			if !errors.Is(err, ebpf.ErrNotSupported) || at.tcMode == TCModeTCX {
				return rec, fmt.Errorf("attaching %s to tcx %s of %s: %w", rec.Program, rec.Direction, rec.Target, err)
			}
			at.tcMode = TCModeLegacy
		}
		rec.Mode = modeTCLegacy
		if err := at.ensureClsact(ifc); err != nil {
			return rec, err
		}
		return rec, netlink.FilterReplace(legacyFilter(idx, rec, prog))
	case rec.Hook == "xdp":
		ifc, err := netlink.LinkByName(rec.Target)
		if err != nil {
			return rec, fmt.Errorf("%s: %w", rec.Target, errNoDevice)
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Attrs().Index, Flags: link.XDPDriverMode})
		rec.Mode = modeXDPNative
		if err != nil {
			var gerr error
			l, gerr = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Attrs().Index, Flags: link.XDPGenericMode})
			if gerr != nil {
				return rec, fmt.Errorf("attaching %s to XDP of %s: native: %v; generic: %w", rec.Program, rec.Target, err, gerr)
			}
			rec.Mode = modeXDPGeneric
		}
		return rec, at.pinLink(&rec, l)
	case isCgroupHook(rec.Hook):
		typ, ok := cgroupAttachTypes[rec.Hook]
		if !ok {
			return rec, fmt.Errorf("program %s: unknown cgroup hook %q", rec.Program, rec.Hook)
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: rec.Target, Attach: typ, Program: prog})
		if err != nil {
			return rec, fmt.Errorf("attaching %s to %s of cgroup %s: %w", rec.Program, rec.Hook, rec.Target, err)
		}
		rec.Mode = modeCgroup
		return rec, at.pinLink(&rec, l)
	}
	return rec, fmt.Errorf("program %s: unknown hook %q (want tc, xdp or a cgroup hook such as cgroup/connect4)", rec.Program, rec.Hook)
}

func (at *attacher) pinLink(rec *attachRecord, l link.Link) error {
	defer l.Close()
	rec.Pin = at.linkPin(*rec)
	path := filepath.Join(at.pinDir, rec.Pin)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	os.Remove(path) // a stale pin of a link that no longer exists
	if err := l.Pin(path); err != nil {
		return fmt.Errorf("pinning the link of %s: %w (the program stays attached only while ebpfd runs)", rec, err)
	}
	return nil
}

func legacyFilter(ifindex int, rec attachRecord, prog *ebpf.Program) *netlink.BpfFilter {
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if rec.Direction == "egress" {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    parent,
			Handle:    legacyHandle,
			Priority:  legacyPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Name:         rec.Program,
		DirectAction: true,
		Fd:           -1,
	}
	if prog != nil {
		f.Fd = prog.FD()
	}
	return f
}

func (at *attacher) ensureClsact(ifc netlink.Link) error {
	qs, err := netlink.QdiscList(ifc)
	if err != nil {
		return fmt.Errorf("listing qdiscs of %s: %w", ifc.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return nil
		}
	}
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifc.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscAdd(q); err != nil {
		return fmt.Errorf("adding a clsact qdisc to %s: %w", ifc.Attrs().Name, err)
	}
	if at.createdQdisc != nil {
		at.createdQdisc(ifc.Attrs().Name)
	}
	return nil
}

// replace makes rec run prog instead of its current program, atomically.
func (at *attacher) replace(rec attachRecord, prog *ebpf.Program) error {
	if rec.Mode == modeTCLegacy {
		ifc, err := netlink.LinkByName(rec.Target)
		if err != nil {
			return fmt.Errorf("%s: %w", rec.Target, errNoDevice)
		}
		return netlink.FilterReplace(legacyFilter(ifc.Attrs().Index, rec, prog))
	}
	l, err := link.LoadPinnedLink(filepath.Join(at.pinDir, rec.Pin), nil)
	if err != nil {
		return fmt.Errorf("opening the link of %s: %w", rec, err)
	}
	defer l.Close()
	if err := l.Update(prog); err != nil {
		return fmt.Errorf("replacing the program of %s: %w", rec, err)
	}
	return nil
}

// detach removes rec's attachment.
func (at *attacher) detach(rec attachRecord) error {
	if rec.Mode == modeTCLegacy {
		ifc, err := netlink.LinkByName(rec.Target)
		if err != nil {
			return nil // the device and its filters are gone
		}
		err = netlink.FilterDel(legacyFilter(ifc.Attrs().Index, rec, nil))
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing the filter of %s: %w", rec, err)
		}
		return nil
	}
	path := filepath.Join(at.pinDir, rec.Pin)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening the link of %s: %w", rec, err)
	}
	defer l.Close()
	// Unpinning and closing the last reference detaches the program.
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpinning the link of %s: %w", rec, err)
	}
	return nil
}

// runningTag returns the kernel tag of the program rec runs now, or an error
// when the attachment is not there.
func (at *attacher) runningTag(rec attachRecord) (string, error) {
	if rec.Mode == modeTCLegacy {
		ifc, err := netlink.LinkByName(rec.Target)
		if err != nil {
			return "", fmt.Errorf("%s: %w", rec.Target, errNoDevice)
		}
		want := legacyFilter(ifc.Attrs().Index, rec, nil)
		fs, err := netlink.FilterList(ifc, want.Parent)
		if err != nil {
			return "", err
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok && bf.Handle == want.Handle && bf.Priority == want.Priority {
				return bf.Tag, nil
			}
		}
		return "", fmt.Errorf("no filter for %s", rec)
	}
	l, err := link.LoadPinnedLink(filepath.Join(at.pinDir, rec.Pin), nil)
	if err != nil {
		return "", err
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return "", err
	}
	return programTag(info.Program)
}

func programTag(id ebpf.ProgramID) (string, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", err
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", err
	}
	return info.Tag, nil
}

// removeQdisc deletes the clsact qdisc of dev (ebpfd created it).
func removeQdisc(dev string) error {
	ifc, err := netlink.LinkByName(dev)
	if err != nil {
		return nil
	}
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifc.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	if err := netlink.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("removing the clsact qdisc of %s: %w", dev, err)
	}
	return nil
}
