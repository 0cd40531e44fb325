package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/internal/testenv"
)

// shopDir is the example that docs/testing.md shows.
var shopDir = filepath.Join("..", "..", "examples", "shop")

// testConfig is goodCluster with a policy letting 192.0.2.0/24 reach web
// on TCP 80, and tests: one that passes and, with failing set, one whose
// expectation is wrong.
func testConfig(t *testing.T, failing bool) string {
	t.Helper()
	tests := `package ebpfc

policies: default: web: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24"], toPorts: [{ports: [{port: 80}]}]}]
}
tests: {
	"http": {from: "192.0.2.1", to: "default/web", port: 80, expect: "allow"}
	"ssh": {from: "192.0.2.1", to: "default/web", port: 22, expect: "deny"}
`
	if failing {
		tests += `	"https": {from: "192.0.2.1", to: "default/web", port: 443, expect: "allow"}
`
	}
	return writeDir(t, map[string]string{"c.cue": goodCluster, "t.cue": tests + "}\n"})
}

func TestTestPasses(t *testing.T) {
	code, out, errOut := runCLI("test", "--engine", "vm", shopDir)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitOK, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "engine: vm (ebpfc's interpreter)" {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`^TEST +FROM +TO +PROTO +EXPECT +RESULT$`).MatchString(lines[1]) {
		t.Errorf("column header %q", lines[1])
	}
	row := regexp.MustCompile(`^client-to-db +shop/client-0 +data/db-0 +TCP/5432 +deny +pass$`)
	if !slicesContainMatch(lines, row) {
		t.Errorf("no row %v in:\n%s", row, out)
	}
	// Without -v, passing tests show no steps.
	if len(lines) != 2+15+1 || lines[len(lines)-1] != "15 tests: 15 passed, 0 failed, 0 not run" {
		t.Errorf("want a header, 15 rows and a summary, got:\n%s", out)
	}

	code, out, _ = runCLI("test", "--engine=vm", "-v", "--run", "^client-to-db$", shopDir)
	want := "    forward: TCP 10.0.1.11:32776 > 10.0.2.30:5432 SYN\n" +
		"      node-a  from_shop_client_0  egress of shop/client-0  pass  policy shop/client-egress egress[rule 2] at " + filepath.Join(shopDir, "policies.cue") + ":23:6\n" +
		"      node-b  to_data_db_0        ingress of data/db-0     drop  policy data/db-ingress ingressDeny[rule 0] at " + filepath.Join(shopDir, "policies.cue") + ":52:16\n" +
		"1 test: 1 passed, 0 failed, 0 not run\n"
	if code != exitOK || !strings.HasSuffix(out, want) {
		t.Errorf("-v --run: exit %d, output:\n%s\nwant it to end in:\n%s", code, out, want)
	}
}

func slicesContainMatch(lines []string, re *regexp.Regexp) bool {
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// TestTestFails: a failed test exits 1 and shows the program and the rule
// that decided, with its position.
func TestTestFails(t *testing.T) {
	dir := testConfig(t, true)
	code, out, errOut := runCLI("test", "--engine", "vm", dir)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitConfig, out, errOut)
	}
	for _, want := range []string{
		"\nhttps  192.0.2.1  default/web  TCP/443  allow   FAIL\n",
		"    " + filepath.Join(dir, "t.cue") + ":10:2: want allow, but the forward packet was dropped by to_default_web on node-a (default deny of default/web)\n",
		"    forward: TCP 192.0.2.1:32769 > 10.0.1.5:443 SYN\n",
		"      node-a  to_default_web  ingress of default/web  drop  default deny of default/web at " + filepath.Join(dir, "t.cue") + ":3:20\n",
		"3 tests: 2 passed, 1 failed, 0 not run\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Passing tests show no steps without -v.
	if strings.Count(out, "forward:") != 1 {
		t.Errorf("want the steps of the failed test only:\n%s", out)
	}

	code, out, _ = runCLI("test", "--engine", "vm", "--json", dir)
	var doc struct {
		Engine string `json:"engine"`
		Failed int    `json:"failed"`
		Tests  []struct {
			Name    string `json:"name"`
			Status  string `json:"status"`
			Packets []struct {
				Steps []struct {
					Verdict  string `json:"verdict"`
					Decision struct {
						Kind     string `json:"kind"`
						Position string `json:"position"`
					} `json:"decision"`
				} `json:"steps"`
			} `json:"packets"`
		} `json:"tests"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != exitConfig || doc.Engine != "vm" || doc.Failed != 1 || len(doc.Tests) != 3 || doc.Tests[1].Name != "https" || doc.Tests[1].Status != "fail" {
		t.Fatalf("--json: exit %d, %+v", code, doc)
	}
	if s := doc.Tests[1].Packets[0].Steps[0]; s.Verdict != "drop" || s.Decision.Kind != "default-deny" || !strings.HasSuffix(s.Decision.Position, "t.cue:3:20") {
		t.Errorf("--json: step %+v", s)
	}
}

func TestTestKernel(t *testing.T) {
	testenv.RequireKernel(t)
	code, out, errOut := runCLI("test", "--engine", "kernel", testConfig(t, true))
	if code != exitConfig || !strings.HasPrefix(out, "engine: kernel (BPF_PROG_TEST_RUN)\n") || !strings.Contains(out, "3 tests: 2 passed, 1 failed, 0 not run") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// auto picks the kernel where it can load programs.
	code, out, _ = runCLI("test", testConfig(t, false))
	if code != exitOK || !strings.HasPrefix(out, "engine: kernel (BPF_PROG_TEST_RUN)\n") {
		t.Errorf("auto: exit %d\n%s", code, out)
	}
}

func TestTestErrors(t *testing.T) {
	// A configuration error is printed at its position, exit 2: exit 1
	// means that a test failed.
	bad := writeDir(t, map[string]string{"c.cue": goodCluster, "t.cue": `package ebpfc

tests: ping: {from: "default/web", to: "10.0.0.9", protocol: "ICMP", port: 8, expect: "deny"}
`})
	code, out, errOut := runCLI("test", "--engine", "vm", bad)
	if code != exitUsage || out != "" || !strings.Contains(errOut, filepath.Join(bad, "t.cue")+":3:") || !strings.Contains(errOut, "ICMP has no ports") {
		t.Errorf("config error: exit %d (want %d)\nstdout: %s\nstderr: %s", code, exitUsage, out, errOut)
	}
	unknown := writeDir(t, map[string]string{"c.cue": goodCluster, "t.cue": `package ebpfc

tests: x: {from: "default/nope", to: "default/web", port: 80, expect: "deny"}
`})
	if code, _, errOut := runCLI("test", unknown); code != exitUsage || !strings.Contains(errOut, "t.cue:3:") || !strings.Contains(errOut, "names endpoint default/nope, which is not in endpoints") {
		t.Errorf("unknown endpoint: exit %d, stderr %s", code, errOut)
	}

	dir := testConfig(t, false)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"test", "--engine", "qemu", dir}, `--engine: unknown engine "qemu": want kernel, vm or auto`},
		{[]string{"test", "--run", "(", dir}, "--run: error parsing regexp"},
		{[]string{"test"}, "want exactly one configuration directory, got 0 arguments"},
		{[]string{"test", dir, dir}, "want exactly one configuration directory, got 2 arguments"},
		{[]string{"test", filepath.Join(dir, "c.cue")}, "is not a directory"},
		{[]string{"test", "--bogus", dir}, "flag provided but not defined: -bogus"},
	} {
		code, _, errOut := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q, want %q", c.args, code, exitUsage, errOut, c.want)
		}
	}
}

func TestTestHelp(t *testing.T) {
	code, out, errOut := runCLI("test", "--help")
	if code != exitOK || errOut != "" || !strings.HasPrefix(out, "Usage: ebpfc test DIR") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, flag := range []string{"-engine", "-run", "-v", "-json", "Exit status"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
}

func TestTestNoTests(t *testing.T) {
	code, out, _ := runCLI("test", "--engine", "vm", writeDir(t, map[string]string{"c.cue": goodCluster}))
	if code != exitOK || out != "engine: vm (ebpfc's interpreter)\nno tests to run\n" {
		t.Errorf("exit %d, output %q", code, out)
	}
}

// dualStackConfig is a node with a dual-stack endpoint whose policy lets
// 2001:db8::/32 reach it on TCP 80, and IPv6 tests: one that passes and
// one whose expectation is wrong.
func dualStackConfig(t *testing.T) string {
	t.Helper()
	return writeDir(t, map[string]string{"c.cue": `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16", "fd00::/64"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"], devices: ["eth0"]}
endpoints: default: web: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.5", "fd00::5"], labels: app: "web"}
policies: default: web: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["2001:db8::/32"], toPorts: [{ports: [{port: 80}]}]}]
}
`, "t.cue": `package ebpfc

tests: {
	"http-v6": {from: "2001:db8::1", to: "default/web", port: 80, expect: "allow"}
	"https-v6": {from: "2001:db8::1", to: "default/web", port: 443, expect: "allow"}
}
`})
}

// checkIPv6Output checks the table of dualStackConfig's tests.
func checkIPv6Output(t *testing.T, dir string, code int, out, errOut string) {
	t.Helper()
	if code != exitConfig {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitConfig, out, errOut)
	}
	for _, want := range []string{
		"\nhttp-v6   2001:db8::1  default/web  TCP/80 IPv6   allow   pass\n",
		"\nhttps-v6  2001:db8::1  default/web  TCP/443 IPv6  allow   FAIL\n",
		"    " + filepath.Join(dir, "t.cue") + ":5:2: want allow, but the forward packet was dropped by to_default_web on node-a (default deny of default/web)\n",
		"    forward: TCP [2001:db8::1]:32769 > [fd00::5]:443 SYN\n",
		"      node-a  to_default_web  ingress of default/web  drop  default deny of default/web at " + filepath.Join(dir, "c.cue") + ":6:20\n",
		"2 tests: 1 passed, 1 failed, 0 not run\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTestIPv6(t *testing.T) {
	dir := dualStackConfig(t)
	code, out, errOut := runCLI("test", "--engine", "vm", dir)
	checkIPv6Output(t, dir, code, out, errOut)

	_, out, _ = runCLI("test", "--engine", "vm", "--json", "--run", "^http-v6$", dir)
	var doc struct {
		Tests []struct {
			Family  string `json:"family"`
			Status  string `json:"status"`
			Packets []struct {
				Summary string `json:"summary"`
			} `json:"packets"`
		} `json:"tests"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(doc.Tests) != 1 || doc.Tests[0].Family != "IPv6" || doc.Tests[0].Status != "pass" || len(doc.Tests[0].Packets) != 2 ||
		doc.Tests[0].Packets[1].Summary != "TCP [fd00::5]:80 > [2001:db8::1]:32768 SYN-ACK" {
		t.Errorf("--json: %+v", doc)
	}

	// A family an end does not have is a configuration error at the
	// family field: exit 2, no test runs.
	bad := writeDir(t, map[string]string{"c.cue": goodCluster, "t.cue": `package ebpfc

tests: x: {from: "default/web", to: "10.0.0.9", port: 80, family: "IPv6", expect: "deny"}
`})
	code, out, errOut = runCLI("test", "--engine", "vm", bad)
	want := filepath.Join(bad, "t.cue") + ":3:59: test x: family is IPv6, but from endpoint default/web has no IPv6 address; name an end that has one, or remove family\n"
	if code != exitUsage || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stderr to start with %s", code, exitUsage, out, errOut, want)
	}
}

func TestTestIPv6Kernel(t *testing.T) {
	testenv.RequireKernel(t)
	dir := dualStackConfig(t)
	code, out, errOut := runCLI("test", "--engine", "kernel", dir)
	if !strings.HasPrefix(out, "engine: kernel (BPF_PROG_TEST_RUN)\n") {
		t.Errorf("header: %q", out)
	}
	checkIPv6Output(t, dir, code, out, errOut)
}
