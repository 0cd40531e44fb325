package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// lintConfig has one error (an except outside its cidr is a load error,
// reported as EBPFC005) when bad is set, and otherwise warnings and info
// only: a peer selector that matches nothing and open endpoints.
func lintConfig(t *testing.T, bad bool) string {
	t.Helper()
	files := map[string]string{"c.cue": goodCluster, "p.cue": `package ebpfc

policies: default: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromEndpoints: [{matchLabels: app: "nope"}]}]
}
`}
	if bad {
		files["bad.cue"] = `package ebpfc

policies: default: q: {endpointSelector: {}, egress: [{toCIDRSet: [{cidr: "10.0.0.0/16", except: ["10.1.0.0/24"]}]}]}
`
	}
	return writeDir(t, files)
}

var lintTextLine = regexp.MustCompile(`^(.+\.cue):(\d+):(\d+): (error|warning|info): (.+) \[(EBPFC\d{3})\]$`)

func TestLintText(t *testing.T) {
	dir := lintConfig(t, false)
	code, out, errOut := runCLI("lint", dir)
	if code != exitOK {
		t.Fatalf("exit %d, want %d (no errors)\nstdout: %s\nstderr: %s", code, exitOK, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[4] != "2 findings: 0 errors, 1 warning, 1 info" {
		t.Fatalf("want two findings and a summary, got:\n%s", out)
	}
	m := lintTextLine.FindStringSubmatch(lines[2])
	if m == nil || m[1] != filepath.Join(dir, "p.cue") || m[2] != "5" || m[4] != "warning" || m[6] != "EBPFC003" {
		t.Errorf("second finding %q: want p.cue:5:…: warning: … [EBPFC003]", lines[2])
	}
	if !lintTextLine.MatchString(lines[0]) || !strings.HasPrefix(lines[1], "    hint: ") || !strings.HasPrefix(lines[3], "    hint: ") {
		t.Errorf("want each finding followed by an indented hint:\n%s", out)
	}

	code, out, _ = runCLI("lint", lintConfig(t, true))
	if code != exitConfig || !strings.Contains(out, "error: ") || !strings.Contains(out, "[EBPFC005]") {
		t.Errorf("bad config: exit %d (want %d), output:\n%s", code, exitConfig, out)
	}
}

func TestLintJSON(t *testing.T) {
	code, out, errOut := runCLI("lint", "--format", "json", lintConfig(t, true))
	if code != exitConfig {
		t.Fatalf("exit %d, want %d: %s", code, exitConfig, errOut)
	}
	var doc struct {
		Findings []struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			Severity string `json:"severity"`
			File     string `json:"file"`
			Line     int    `json:"line"`
			Column   int    `json:"column"`
			Message  string `json:"message"`
			Hint     string `json:"hint"`
		} `json:"findings"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(doc.Findings) != 1 || doc.Counts["error"] != 1 {
		t.Fatalf("want the one load error, got %+v", doc)
	}
	f := doc.Findings[0]
	if f.ID != "EBPFC005" || f.Name != "except-outside-cidr" || f.Severity != "error" ||
		!strings.HasSuffix(f.File, "bad.cue") || f.Line != 3 || f.Column == 0 || f.Hint == "" {
		t.Errorf("finding %+v", f)
	}
}

func TestLintSARIF(t *testing.T) {
	dir := lintConfig(t, false)
	code, out, errOut := runCLI("lint", dir, "--format", "sarif")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name    string `json:"name"`
					Version string `json:"version"`
					Rules   []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "ebpfc" || log.Runs[0].Tool.Driver.Version == "" {
		t.Fatalf("log header: %s", out)
	}
	var got []string
	for _, r := range log.Runs[0].Results {
		loc := r.Locations[0].PhysicalLocation
		got = append(got, r.RuleID+" "+r.Level+" "+loc.ArtifactLocation.URI)
	}
	want := []string{"EBPFC008 note c.cue", "EBPFC003 warning p.cue"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("results %q, want %q (URIs relative to the configuration directory)", got, want)
	}
}

func TestLintVerifierBudget(t *testing.T) {
	code, out, _ := runCLI("lint", "--verifier-budget", "10", lintConfig(t, false))
	if code != exitConfig || !strings.Contains(out, "[EBPFC011]") {
		t.Errorf("exit %d, want %d with an EBPFC011 finding:\n%s", code, exitConfig, out)
	}
}

func TestLintUsage(t *testing.T) {
	dir := lintConfig(t, false)
	for _, args := range [][]string{
		{"lint"},
		{"lint", dir, dir},
		{"lint", filepath.Join(dir, "missing")},
		{"lint", dir, "--format", "xml"},
		{"lint", dir, "--verifier-budget", "0"},
		{"lint", dir, "--no-such-flag"},
	} {
		if code, _, errOut := runCLI(args...); code != exitUsage || errOut == "" {
			t.Errorf("%v: exit %d (want %d), stderr %q", args, code, exitUsage, errOut)
		}
	}
	code, out, _ := runCLI("lint", "--help")
	if code != exitOK || !strings.Contains(out, "--format") || !strings.Contains(out, "Exit status") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
}
