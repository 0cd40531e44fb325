package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const runPolicy = `package ebpfc

policies: default: "web-ingress": {
	endpointSelector: matchLabels: app: "web"
	ingress: [{
		fromCIDR: ["192.168.0.0/16"]
		toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]
	}]
}
`

// compiledNode compiles a one-endpoint configuration and returns its node
// directory.
func compiledNode(t *testing.T) string {
	t.Helper()
	dir := writeDir(t, map[string]string{"c.cue": goodCluster, "p.cue": runPolicy})
	out := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := runCLI("compile", dir, "-o", out, "-q"); code != exitOK {
		t.Fatalf("compile: exit %d: %s", code, stderr)
	}
	return filepath.Join(out, "node-a")
}

func TestRunPackets(t *testing.T) {
	node := compiledNode(t)
	code, out, stderr := runCLI("run", node,
		"to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn",
		"to_default_web tcp 8.8.8.8:40000 > 10.0.1.5:80 syn => drop",
		"to_default_web arp => pass")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s\n%s", code, stderr, out)
	}
	for _, want := range []string{
		"to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn\n  verdict: pass (TC_ACT_OK, r0 = 0)",
		"  tail call: to_default_web -> progs[17512] -> to_default_web_ipv4\n",
		"  lookup: to_default_web_ipv4 ipcache_cidr {prefixlen=",
		"192.168.1.10} -> {identity=",
		"  lookup: to_default_web_ipv4 pol_default_web {prefixlen=40 identity=0 egress=0 protocol=0 dport=0} -> miss\n",
		"  map change: rule_stats {index=1}: {packets=0 bytes=0} -> {packets=1 bytes=72}\n    rule cookie 1: allow by policy default/web-ingress ingress rule 0 at ",
		"to_default_web tcp 8.8.8.8:40000 > 10.0.1.5:80 syn => drop\n  verdict: drop (TC_ACT_SHOT, r0 = 2)",
		"    drop reason ",
		"to_default_web arp => pass\n  verdict: pass (TC_ACT_OK, r0 = 0)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Maps keep their changes from one packet to the next.
	code, out, _ = runCLI("run", node,
		"to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn",
		"to_default_web tcp 192.168.1.11:40000 > 10.0.1.5:80 syn")
	if code != exitOK || !strings.Contains(out, "{packets=1 bytes=72} -> {packets=2 bytes=144}") {
		t.Errorf("exit %d; the second packet does not count on top of the first:\n%s", code, out)
	}
}

func TestRunVerdictMismatch(t *testing.T) {
	node := compiledNode(t)
	code, _, stderr := runCLI("run", node, "to_default_web tcp 8.8.8.8:40000 > 10.0.1.5:80 syn => pass")
	if code != exitConfig || !strings.Contains(stderr, "packet 1: verdict drop, the line expects pass") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestRunUsageErrors(t *testing.T) {
	node := compiledNode(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "want a node directory and at least one packet"},
		{[]string{"run", node}, "want a node directory and at least one packet"},
		{[]string{"run", t.TempDir(), "to_x tcp 1.2.3.4:1 > 5.6.7.8:2"}, "is not a compiled node directory"},
		{[]string{"run", node, "to_default_web tcp 1.2.3.4:1"}, "packet 1: "},
		{[]string{"run", node, "to_nobody tcp 1.2.3.4:1 > 5.6.7.8:2"}, `packet 1: no program "to_nobody"`},
		{[]string{"run", "--cpu", "2", node, "to_default_web arp"}, "--cpu 2 is not one of --ncpu 1 CPUs"},
		{[]string{"run", "--asm", "x.data", "extra"}, "--asm takes no other arguments"},
		{[]string{"run", "--asm", filepath.Join(t.TempDir(), "missing.data")}, "no such file"},
		{[]string{"run", "--mem", "00", node, "to_default_web arp"}, "--mem needs --asm"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d (want %d), stderr %q (want %q)", tc.args, code, exitUsage, stderr, tc.want)
		}
	}
}

func TestRunAsm(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.data", "-- asm\nldxh %r0, [%r1+2]\nadd %r0, %r2\nexit\n-- mem\n00 00 34 12\n-- result\n0x1238\n")
	code, out, stderr := runCLI("run", "--asm", good)
	if code != exitOK || out != "r0 = 0x1238 (3 instructions executed)\n" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// --mem replaces the file's memory; the expected result then differs.
	code, out, stderr = runCLI("run", "--asm", good, "--mem", "00 00 01 00 00 00")
	if code != exitConfig || out != "r0 = 0x7 (3 instructions executed)\n" || !strings.Contains(stderr, "r0 is 0x7, the file expects 0x1238") {
		t.Errorf("--mem: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	plain := write("plain.s", "mov %r0, 7\nexit\n")
	if code, out, _ := runCLI("run", "--asm", plain); code != exitOK || out != "r0 = 0x7 (2 instructions executed)\n" {
		t.Errorf("plain: exit %d, stdout %q", code, out)
	}
	bad := write("bad.data", "-- asm\nmov %r0, 0\nldxq %r0, [%r1]\nexit\n")
	code, _, stderr = runCLI("run", "--asm", bad)
	if code != exitConfig || !strings.Contains(stderr, bad+":3:1: unknown mnemonic ldxq") {
		t.Errorf("bad: exit %d, stderr %q", code, stderr)
	}
	fault := write("fault.data", "-- asm\nldxdw %r0, [%r1+8]\nexit\n-- mem\n00\n")
	code, _, stderr = runCLI("run", "--asm", fault)
	if code != exitConfig || !strings.Contains(stderr, "instruction 0") || !strings.Contains(stderr, "out of bounds") {
		t.Errorf("fault: exit %d, stderr %q", code, stderr)
	}
	code, out, _ = runCLI("run", "--asm", plain, "--trace")
	if code != exitOK || !strings.Contains(out, "main    0: MovImm dst: r0 imm: 7\n") {
		t.Errorf("--trace: exit %d, stdout %q", code, out)
	}
}
