package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// basicExample is examples/basic, as seen from this package.
var basicExample = filepath.Join("..", "..", "examples", "basic")

func TestExplainHelp(t *testing.T) {
	code, out, errOut := runCLI("explain", "--help")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"Usage: ebpfc explain [--node NODE] [--json] [--insns] DIR FLOW", "PROTO SRC -> DST", "--node", "--json", "--insns"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainVerdicts(t *testing.T) {
	pol := filepath.Join(basicExample, "policies.cue")
	tests := []struct {
		args []string
		want []string
	}{{
		[]string{basicExample, "tcp 192.168.1.10:40000 -> 10.244.1.10:80 syn"},
		[]string{
			"node-a: ingress policy of web/frontend-0\n",
			"    lookup ipcache {addr=::ffff:192.168.1.10} -> miss\n",
			"    lookup ipcache_cidr {prefixlen=128 addr=::ffff:192.168.1.10} -> {identity=9 (reserved:world-ipv4)}\n",
			", allow by web/frontend-ingress ingress[0] at " + pol + ":9:13\n",
			"\nverdict: pass\n",
		},
	}, {
		// The flow may come unquoted, as several arguments.
		[]string{basicExample, "tcp", "from", "web/frontend-0", "to", "db/postgres-0:5432"},
		[]string{
			"node-a: egress policy of web/frontend-0\n",
			"  drop reason: policy denied\n",
			", default-deny of web/frontend-0 egress at " + pol + ":6:7\n",
			"not reached: node-b: ingress policy of db/postgres-0 (dropped before)\n",
			"\nverdict: drop\n",
		},
	}, {
		[]string{"--node", "node-b", basicExample, "tcp from web/frontend-0 to db/postgres-0:5432"},
		[]string{
			"node-b: ingress policy of db/postgres-0\n",
			", deny by db/postgres-ingress ingressDeny[0] at " + pol + ":54:17\n",
			"\nverdict: drop\n",
		},
	}}
	for _, tt := range tests {
		code, out, errOut := runCLI(append([]string{"explain"}, tt.args...)...)
		if code != exitOK {
			t.Errorf("%q: exit %d, want 0 whatever the verdict; stderr:\n%s", tt.args, code, errOut)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}

func TestExplainJSON(t *testing.T) {
	code, out, errOut := runCLI("explain", "--json", basicExample, "tcp from api/api-0 to db/postgres-0:5432")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	var r struct {
		Flow    string
		Verdict string
		Stages  []struct {
			Node, Role string
			Rule       *struct {
				Cookie   int
				Kind     string
				Policy   string
				Position string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if r.Verdict != "pass" || len(r.Stages) != 2 || r.Stages[1].Rule == nil ||
		r.Stages[1].Rule.Policy != "db/postgres-ingress" || r.Stages[1].Rule.Kind != "allow" ||
		r.Stages[1].Rule.Position != filepath.Join(basicExample, "policies.cue")+":47:13" {
		t.Errorf("want api-0's open egress on node-a, then db/postgres-ingress's allow rule on node-b, got %+v\n%s", r, out)
	}
}

var flowErrorLine = regexp.MustCompile(`^ebpfc explain: flow:1:(\d+): (.+)$`)

func TestExplainErrors(t *testing.T) {
	dir := writeDir(t, map[string]string{"c.cue": goodCluster})
	bad := writeDir(t, map[string]string{"c.cue": goodCluster, "p.cue": `package ebpfc

policies: default: p: {endpointSelector: {}, ingress: [{fromCIDR: ["10.0.0.0/33"]}]}
`})
	tests := []struct {
		args []string
		code int
		want string // a part of stderr
		col  int    // the column a flow error points at
	}{
		{[]string{}, exitUsage, "want a configuration directory and a flow", 0},
		{[]string{dir}, exitUsage, "want a configuration directory and a flow", 0},
		{[]string{filepath.Join(dir, "missing"), "tcp 1.1.1.1:1 -> 10.0.1.5:80"}, exitUsage, "is not a directory", 0},
		{[]string{dir, "tcp 1.1.1.1:1 -> 10.0.1.5"}, exitUsage, "expected ':PORT' after the destination", 26},
		{[]string{dir, "tcp 1.1.1.1:1 -> 10.0.1.5:80 urg"}, exitUsage, `unknown option "urg"`, 30},
		{[]string{dir, "tcp from default/api to 10.0.1.5:80"}, exitUsage, "no endpoint default/api", 10},
		{[]string{"--node", "node-z", dir, "tcp 1.1.1.1:1 -> 10.0.1.5:80"}, exitUsage, `no node "node-z"`, 0},
		{[]string{dir, "tcp 1.1.1.1:1 -> 2.2.2.2:80"}, exitUsage, "neither 1.1.1.1 nor 2.2.2.2 is an endpoint's address", 0},
		{[]string{bad, "tcp 1.1.1.1:1 -> 10.0.1.5:80"}, exitConfig, filepath.Join(bad, "p.cue") + ":3:", 0},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(append([]string{"explain"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d (want %d), stderr:\n%s\nwant %q", tt.args, code, tt.code, errOut, tt.want)
		}
		if out != "" {
			t.Errorf("%q: an error printed on stdout: %s", tt.args, out)
		}
		if tt.col == 0 {
			continue
		}
		lines := strings.Split(errOut, "\n")
		m := flowErrorLine.FindStringSubmatch(lines[0])
		if m == nil || m[1] != itoa(tt.col) {
			t.Errorf("%q: first line %q, want flow:1:%d: ...", tt.args, lines[0], tt.col)
			continue
		}
		// The flow, then a caret under the column.
		if len(lines) < 3 || strings.Index(lines[2], "^") != tt.col+1 {
			t.Errorf("%q: no caret under column %d:\n%s", tt.args, tt.col, errOut)
		}
	}
}
