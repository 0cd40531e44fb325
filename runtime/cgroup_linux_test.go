//go:build linux

package runtime_test

// The compiler emits no cgroup programs and no events yet, so these tests
// hand-build a node's artifacts: a cgroup/connect4 program that writes one
// event record into the "events" ring buffer and then allows or refuses the
// connect. They check that the daemon attaches cgroup hooks (and replaces
// them in place), and reads, decodes and enriches events end to end through
// the kernel.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// connectEnv makes the test binary connect a UDP socket to the address it
// holds and exit, instead of running tests (see TestMain).
const connectEnv = "EBPFD_TEST_CONNECT"

func TestMain(m *testing.M) {
	if sock := os.Getenv(statusEnv); sock != "" {
		helperStatus(sock)
	}
	if addr := os.Getenv(connectEnv); addr != "" {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		c.Close()
		fmt.Println("connected")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// connectFromCgroup runs a process in cgroup that connects a UDP socket to
// addr, and returns what it printed.
func connectFromCgroup(t *testing.T, cgroup, addr string) string {
	t.Helper()
	f, err := os.Open(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), connectEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

// connectArtifacts builds artifacts whose one program, attached at
// cgroup/connect4, emits rec into "events" and returns verdict (1 allows
// the connect, 0 refuses it).
func connectArtifacts(t *testing.T, rec []byte, verdict int32) *runtime.Artifacts {
	t.Helper()
	layout := testEventLayout()
	if len(rec)%8 != 0 {
		t.Fatalf("record of %d bytes: want a multiple of 8", len(rec))
	}
	var insns asm.Instructions
	for off := 0; off < len(rec); off += 8 {
		insns = append(insns,
			asm.LoadImm(asm.R1, int64(binary.LittleEndian.Uint64(rec[off:])), asm.DWord),
			asm.StoreMem(asm.RFP, int16(off-len(rec)), asm.R1, asm.DWord))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, 0).WithReference("events"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(-len(rec))),
		asm.Mov.Imm(asm.R3, int32(len(rec))),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, verdict),
		asm.Return(),
	)
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"events": {Name: "events", Type: ebpf.RingBuf, MaxEntries: 1 << 16}},
		Programs: map[string]*ebpf.ProgramSpec{"connect_guard": {
			Name: "connect_guard", Type: ebpf.CGroupSockAddr, AttachType: ebpf.AttachCGroupInet4Connect,
			License: "MIT", Instructions: insns,
		}},
	}
	m, raw := testEventManifest(layout)
	m.Maps[0].MaxEntries = 1 << 16
	m.Programs = []compiler.ManifestProg{{
		Name: "connect_guard", Section: "cgroup/connect4", Type: "CGroupSockAddr", Instructions: len(insns),
		SHA256:   fmt.Sprintf("hand-built-verdict-%d", verdict),
		Attach:   []lower.Attachment{{Program: "connect_guard", Hook: "cgroup/connect4"}},
		Position: "hand-built",
	}}
	// Keep the raw manifest's extra fields (endpoints) with the programs.
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	progs, _ := json.Marshal(m.Programs)
	var progsDoc any
	json.Unmarshal(progs, &progsDoc)
	doc["programs"] = progsDoc
	raw, _ = json.Marshal(doc)
	return &runtime.Artifacts{Dir: "hand-built", Manifest: m, ManifestJSON: raw, Maps: &compiler.MapsDoc{}, Spec: spec}
}

func TestDaemonCgroupHookAndEvents(t *testing.T) {
	testenv.RequireKernel(t)
	cgroup := filepath.Join(runtime.DefaultCgroup, testenv.UniqueName("ebpfc-test-"))
	if err := os.Mkdir(cgroup, 0o755); err != nil {
		t.Fatalf("creating a cgroup-v2 directory: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cgroup); err != nil {
			t.Errorf("removing %s: %v", cgroup, err)
		}
	})
	d := startDaemon(t, runtime.Options{Cgroup: cgroup})
	events, cancel := d.Subscribe(runtime.EventFilter{Type: "drop"})
	defer cancel()

	rec := encodeEvent(testEventLayout(), testEvent{typ: 2, dir: 1, verdict: 1, proto: 17, reason: 2, family: 4,
		sport: 0, dport: 9, endpoint: 0, identity: 2, cookie: 2,
		saddr: netip.MustParseAddr("10.1.0.10"), daddr: netip.MustParseAddr("192.0.2.9")})
	res, err := d.ApplyArtifacts(connectArtifacts(t, rec, 0), "hand-built")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Attached) != 1 || !strings.HasPrefix(res.Attached[0], "cgroup/connect4 "+cgroup) {
		t.Fatalf("attached %v, want cgroup/connect4 at %s", res.Attached, cgroup)
	}
	if got := connectFromCgroup(t, cgroup, "192.0.2.9:9"); !strings.Contains(got, "operation not permitted") {
		t.Errorf("connect from the cgroup: %q, want it refused", got)
	}
	if got := connectFromCgroup(t, runtime.DefaultCgroup, "192.0.2.9:9"); got != "connected" {
		t.Errorf("connect from outside the cgroup: %q, want it allowed", got)
	}
	select {
	case ev := <-events:
		want := "drop denied egress udp 10.1.0.10:0 -> 192.0.2.9:9 endpoint default/client peer reserved:world " +
			`reason "policy denied" by default-deny of default/server ingress at policies.cue:3:20`
		if got := strings.Join(strings.Fields(ev.String())[1:], " "); got != want {
			t.Errorf("event:\n got %s\nwant %s", got, want)
		}
		if ev.Node != "node-a" {
			t.Errorf("event node %q", ev.Node)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event from the ring buffer")
	}
	if st := d.Status(); st.Events != "reading" {
		t.Errorf("status events: %q", st.Events)
	}

	// New code for the same hook: replaced in place, not attached twice.
	res, err = d.ApplyArtifacts(connectArtifacts(t, rec, 1), "hand-built")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) != 1 || len(res.Attached) != 0 || len(res.Detached) != 0 {
		t.Errorf("replaced %v, attached %v, detached %v; want one replacement", res.Replaced, res.Attached, res.Detached)
	}
	if got := connectFromCgroup(t, cgroup, "192.0.2.9:9"); got != "connected" {
		t.Errorf("connect after the upgrade: %q, want it allowed", got)
	}
	out, err := execOutput("bpftool", "cgroup", "show", cgroup)
	if err != nil {
		t.Fatal(err, out)
	}
	if n := strings.Count(out, "connect_guard"); n != 1 {
		t.Errorf("bpftool cgroup show: %d programs connect_guard, want 1:\n%s", n, out)
	}
}
