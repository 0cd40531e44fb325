package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodCluster = `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"], devices: ["eth0"]}
endpoints: default: web: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.5"], labels: app: "web"}
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "compile"}} {
		if code, out, _ := runCLI(args...); code != exitOK || !strings.Contains(out, "Usage") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	for _, c := range commands {
		code, out, errOut := runCLI(c.name, "--help")
		if code != exitOK || !strings.Contains(out, "Usage: ebpfc "+c.name) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", c.name, code, out, errOut)
		}
		// Help is an answer, not an error: once, on stdout.
		if errOut != "" || strings.Count(out, "Usage:") != 1 {
			t.Errorf("%s --help: usage printed %d times on stdout, stderr %q", c.name, strings.Count(out, "Usage:"), errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := writeDir(t, map[string]string{"c.cue": goodCluster})
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"compile"},
		{"compile", dir, dir},
		{"compile", dir, "--no-such-flag"},
		{"compile", filepath.Join(dir, "missing")},
		{"compile", dir, "--node", "node-z", "-o", filepath.Join(dir, "out")},
		{"version", "extra"},
		{"verify", dir},
	} {
		if code, _, errOut := runCLI(args...); code != exitUsage || errOut == "" {
			t.Errorf("%v: exit %d (want %d), stderr %q", args, code, exitUsage, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Errorf("a usage error wrote output")
	}
}

func TestCompileWritesEveryNode(t *testing.T) {
	dir := writeDir(t, map[string]string{"c.cue": goodCluster + `nodes: "node-b": {addresses: ["192.168.1.2"]}` + "\n"})
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI("compile", dir, "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, node := range []string{"node-a", "node-b"} {
		for _, f := range []string{"datapath.o", "datapath.s", "datapath.ir", "manifest.json", "maps.json"} {
			if _, err := os.Stat(filepath.Join(out, node, f)); err != nil {
				t.Errorf("missing %s/%s: %v", node, f, err)
			}
		}
		if !strings.Contains(stdout, node+":") {
			t.Errorf("summary does not mention %s: %q", node, stdout)
		}
	}
	// --node compiles one node only.
	one := filepath.Join(t.TempDir(), "one")
	if code, _, stderr := runCLI("compile", "--node", "node-b", dir, "-o", one); code != exitOK {
		t.Fatalf("--node: exit %d: %s", code, stderr)
	}
	if ents, _ := os.ReadDir(one); len(ents) != 1 || ents[0].Name() != "node-b" {
		t.Errorf("--node node-b wrote %v", ents)
	}
}

// TestBadConfigs feeds malformed configurations through the CLI. Each must
// exit 1, print the problem at the position marked in the case (the column
// of the marker text in the offending line), write nothing and not panic.
func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name   string
		file   string // bad.cue, or a .json file when the name says so
		line   string // the offending line (line 3 of the file)
		marker string // where on that line the error must point; "" checks the line only
		want   string // a substring of the message
	}{
		{"unknown node", "bad.cue", `endpoints: default: api: {node: "node-z", interface: "lxc-api", addresses: ["10.0.1.6"]}`, `api:`, "node-z"},
		{"port out of range", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 70000}]}]}]}`, `70000`, "70000"},
		{"bad CIDR", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{fromCIDR: ["10.0.0.0/33"]}]}`, `"10.0.0.0/33"`, "10.0.0.0/33"},
		{"bad address", "bad.cue", `endpoints: default: api: {node: "node-a", interface: "lxc-api", addresses: ["10.0.1.300"]}`, `"10.0.1.300"`, "10.0.1.300"},
		{"wrong type", "bad.cue", `nodes: "node-b": {addresses: "192.168.1.2"}`, `"192.168.1.2"`, "list"},
		{"unknown field", "bad.cue", `nodes: "node-b": {address: ["192.168.1.2"]}`, `address`, "address"},
		{"duplicate address", "bad.cue", `endpoints: default: api: {node: "node-a", interface: "lxc-api", addresses: ["10.0.1.5"]}`, `api:`, "10.0.1.5"},
		{"duplicate interface", "bad.cue", `endpoints: default: api: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.6"]}`, `api:`, "lxc-web"},
		{"except outside cidr", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{fromCIDRSet: [{cidr: "10.0.0.0/16", except: ["10.1.0.0/24"]}]}]}`, `"10.1.0.0/24"`, "not inside"},
		{"inverted port range", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 200, endPort: 100, protocol: "TCP"}]}]}]}`, ``, "100"},
		{"bad protocol", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 80, protocol: "TCPX"}]}]}]}`, `"TCPX"`, "TCPX"},
		{"bad operator", "bad.cue", `policies: default: p: {endpointSelector: matchExpressions: [{key: "a", operator: "Like"}], ingress: [{}]}`, `"Like"`, "Like"},
		{"bad enforcement", "bad.cue", `settings: enforcement: "sometimes"`, `"sometimes"`, "sometimes"},
		{"syntax error", "bad.cue", `policies: default: p: {endpointSelector: {}`, ``, "expected"},
		{"service unsupported", "bad.cue", `services: default: s: {type: "ClusterIP", clusterIPs: ["10.96.0.9"], ports: [{port: 80, protocol: "TCP", targetPort: 80}]}`, `s: {type`, "services are not supported yet"},
		{"nodeSelector in a namespaced policy", "bad.cue", `policies: default: h: {nodeSelector: {}, ingress: [{fromEntities: ["world"]}]}`, `{}, ingress`, "nodeSelector is only allowed in clusterPolicies"},
		{"bad entity", "bad.cue", `policies: default: p: {endpointSelector: {}, ingress: [{fromEntities: ["galaxy"]}]}`, `"galaxy"`, "galaxy"},
		{"endpoint is api server", "bad.cue", `endpoints: default: api: {node: "node-a", interface: "lxc-api", addresses: ["10.0.1.6"]}, cluster: apiServer: ["10.0.1.6"]`, `api:`, "apiServer"},
		{"label wrong type", "bad.cue", `endpoints: default: api: {node: "node-a", interface: "lxc-api", addresses: ["10.0.1.6"], labels: app: 5}`, `5}`, "string"},
		{"json bad address", "bad.json", `{"endpoints": [{"namespace": "default", "name": "x", "node": "node-a", "interface": "lxc-x", "addresses": ["bad"]}]}`, `"bad"`, "bad"},
	}
	if len(cases) < 20 {
		t.Fatalf("only %d bad configs", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			content := "package ebpfc\n\n" + c.line + "\n"
			line := 3
			if strings.HasSuffix(c.file, ".json") {
				content, line = c.line+"\n", 1
			}
			dir := writeDir(t, map[string]string{"good.cue": goodCluster, c.file: content})
			out := filepath.Join(t.TempDir(), "out")
			code, stdout, stderr := runCLI("compile", dir, "-o", out)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitConfig, stdout, stderr)
			}
			pos := filepath.Join(dir, c.file) + ":" + itoa(line) + ":"
			if c.marker != "" {
				pos += itoa(strings.Index(c.line, c.marker)+1) + ":"
			}
			found := false
			for _, l := range strings.Split(stderr, "\n") {
				// An error about two places (a duplicate) may be reported at
				// the other one, naming this one in parentheses.
				if (strings.HasPrefix(l, pos) || strings.Contains(l, "("+strings.TrimSuffix(pos, ":")+")")) && strings.Contains(l, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("want an error at %s mentioning %q; got:\n%s", pos, c.want, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("output directory was written despite the error")
			}
		})
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
