//go:build linux

package compiler_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/testenv"
)

// TestInteropBpftool loads every object the golden cases generate with
// libbpf (bpftool prog loadall) and checks that the programs and maps libbpf
// created agree with what cilium/ebpf's LoadCollectionSpec reads from the
// same bytes, including the program array libbpf initialised from the
// object.
func TestInteropBpftool(t *testing.T) {
	testenv.RequireKernel(t)
	bpftool := testenv.RequireTool(t, "bpftool")
	testenv.MountBPFFS(t)
	for _, c := range readGolden(t) {
		_, arts, err := compileCase(c, c.names)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range arts {
			t.Run(c.name+"/"+a.Node, func(t *testing.T) {
				checkBpftool(t, bpftool, a.Files[compiler.ObjectFile])
			})
		}
	}
}

// checkBpftool loads obj with bpftool and compares what libbpf created with
// what LoadCollectionSpec reads from the same bytes.
func checkBpftool(t *testing.T, bpftool string, obj []byte) {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, compiler.ObjectFile)
	if err := os.WriteFile(path, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join("/sys/fs/bpf", testenv.UniqueName("ebpfc-test-"))
	t.Cleanup(func() { os.RemoveAll(pin) })
	// bpftool creates the directory only when it pins a program;
	// a node with none still pins its maps below it.
	if err := os.MkdirAll(pin, 0o700); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, bpftool, "prog", "loadall", path, pin, "pinmaps", filepath.Join(pin, "maps"))

	for name, ps := range spec.Programs {
		var info struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		out := testenv.Run(t, bpftool, "-j", "prog", "show", "pinned", filepath.Join(pin, name))
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("bpftool prog show %s: %v", name, err)
		}
		want := map[ebpf.ProgramType]string{ebpf.SchedCLS: "sched_cls", ebpf.XDP: "xdp"}[ps.Type]
		if info.Type != want || !strings.HasPrefix(name, info.Name) {
			t.Errorf("program %s: bpftool has type %s name %s, LoadCollectionSpec type %s", name, info.Type, info.Name, ps.Type)
		}
	}
	for name, ms := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue
		}
		var info struct {
			Type       string `json:"type"`
			KeySize    uint32 `json:"bytes_key"`
			ValueSize  uint32 `json:"bytes_value"`
			MaxEntries uint32 `json:"max_entries"`
			Flags      uint32 `json:"flags"`
		}
		out := testenv.Run(t, bpftool, "-j", "map", "show", "pinned", filepath.Join(pin, "maps", name))
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("bpftool map show %s: %v", name, err)
		}
		if info.KeySize != ms.KeySize || info.ValueSize != ms.ValueSize || info.MaxEntries != ms.MaxEntries || info.Flags != ms.Flags {
			t.Errorf("map %s: bpftool has key %d value %d max %d flags %d; LoadCollectionSpec key %d value %d max %d flags %d",
				name, info.KeySize, info.ValueSize, info.MaxEntries, info.Flags, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags)
		}
		if ms.Type == ebpf.ProgramArray {
			var entries []json.RawMessage
			out := testenv.Run(t, bpftool, "-j", "map", "dump", "pinned", filepath.Join(pin, "maps", name))
			if err := json.Unmarshal(out, &entries); err != nil {
				t.Fatalf("bpftool map dump %s: %v", name, err)
			}
			if len(entries) != len(ms.Contents) {
				t.Errorf("prog array %s: libbpf filled %d slots, the object initialises %d", name, len(entries), len(ms.Contents))
			}
		}
	}
}

// TestInteropIproute2 attaches every node's XDP program with iproute2 ("ip
// link set dev D xdp obj F sec xdp") to a veth in a network namespace the
// test creates.
func TestInteropIproute2(t *testing.T) {
	testenv.RequireKernel(t)
	ip := testenv.RequireTool(t, "ip")
	n := 0
	for _, c := range readGolden(t) {
		_, arts, err := compileCase(c, c.names)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range arts {
			obj, ok := a.Files[compiler.XDPObjectFile]
			if !ok {
				continue
			}
			n++
			t.Run(c.name+"/"+a.Node, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), compiler.XDPObjectFile)
				if err := os.WriteFile(path, obj, 0o644); err != nil {
					t.Fatal(err)
				}
				ns := testenv.NewNetns(t)
				testenv.Run(t, ip, "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
				testenv.Run(t, ip, "-n", ns, "link", "set", "dev", "veth0", "xdp", "obj", path, "sec", "xdp")
				if out := testenv.Run(t, ip, "-n", ns, "link", "show", "veth0"); !bytes.Contains(out, []byte("prog/xdp id")) {
					t.Errorf("ip link show: no XDP program attached:\n%s", out)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no golden case has an XDP program; the iproute2 test would prove nothing")
	}
}

// TestInteropExamples loads every example's objects with bpftool.
func TestInteropExamples(t *testing.T) {
	testenv.RequireKernel(t)
	bpftool := testenv.RequireTool(t, "bpftool")
	testenv.MountBPFFS(t)
	for _, dir := range exampleDirs(t) {
		arts, err := compiler.CompileDir(dir, compiler.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range arts {
			t.Run(filepath.Base(dir)+"/"+a.Node, func(t *testing.T) {
				checkBpftool(t, bpftool, a.Files[compiler.ObjectFile])
			})
		}
	}
}
