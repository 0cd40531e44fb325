package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const mistakesDir = "testdata/mistakes"

func lintMistakes(t *testing.T) []Finding {
	t.Helper()
	findings, err := Dir(mistakesDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return findings
}

// TestSARIFGolden compares the SARIF log of testdata/mistakes with
// testdata/mistakes.sarif; EBPFC_UPDATE=1 rewrites it (review the diff).
func TestSARIFGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, lintMistakes(t), SARIFOptions{ToolVersion: "test", Root: mistakesDir}); err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, buf.Bytes())
	golden := filepath.Join("testdata", "mistakes.sarif")
	if os.Getenv("EBPFC_UPDATE") == "1" {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (EBPFC_UPDATE=1 writes it)", err)
	}
	if d := cmp.Diff(string(want), buf.String()); d != "" {
		t.Errorf("%s differs (-want +got; EBPFC_UPDATE=1 rewrites it):\n%s", golden, d)
	}
}

// validateSARIF checks a log against the parts of the SARIF 2.1.0 schema
// (sarif-schema-2.1.0.json) that ebpfc writes: required properties, their
// types, the level enumeration, 1-based regions, and that every result's
// ruleId and ruleIndex name a rule of the driver. It reads the log as
// generic JSON, not through the writer's types.
func validateSARIF(t *testing.T, data []byte) {
	t.Helper()
	var log map[string]any
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	errorf := func(path, format string, args ...any) {
		t.Helper()
		t.Errorf("SARIF %s: %s", path, fmt.Sprintf(format, args...))
	}
	str := func(m map[string]any, path, key string, required bool) string {
		t.Helper()
		v, ok := m[key]
		if !ok {
			if required {
				errorf(path, "missing required %q", key)
			}
			return ""
		}
		s, ok := v.(string)
		if !ok {
			errorf(path+"."+key, "want a string, got %T", v)
		}
		return s
	}
	obj := func(v any, path string) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			errorf(path, "want an object, got %T", v)
			return map[string]any{}
		}
		return m
	}
	arr := func(m map[string]any, path, key string, required bool) []any {
		t.Helper()
		v, ok := m[key]
		if !ok {
			if required {
				errorf(path, "missing required %q", key)
			}
			return nil
		}
		a, ok := v.([]any)
		if !ok {
			errorf(path+"."+key, "want an array, got %T", v)
		}
		return a
	}
	integer := func(m map[string]any, path, key string, min float64, required bool) (int, bool) {
		t.Helper()
		v, ok := m[key]
		if !ok {
			if required {
				errorf(path, "missing required %q", key)
			}
			return 0, false
		}
		n, ok := v.(float64)
		if !ok || n != float64(int(n)) || n < min {
			errorf(path+"."+key, "want an integer >= %v, got %v", min, v)
		}
		return int(n), true
	}
	message := func(v any, path string) {
		t.Helper()
		if s := str(obj(v, path), path, "text", true); s == "" {
			errorf(path, "empty text")
		}
	}
	location := func(v any, path string) {
		t.Helper()
		loc := obj(v, path)
		if id, ok := loc["id"]; ok {
			if n, ok := id.(float64); !ok || n < -1 {
				errorf(path+".id", "want an integer >= -1, got %v", id)
			}
		}
		pl, ok := loc["physicalLocation"]
		if !ok {
			errorf(path, "missing physicalLocation")
			return
		}
		p := obj(pl, path+".physicalLocation")
		al, ok := p["artifactLocation"]
		if !ok {
			errorf(path+".physicalLocation", "missing artifactLocation")
			return
		}
		uri := str(obj(al, path+".physicalLocation.artifactLocation"), path+".physicalLocation.artifactLocation", "uri", true)
		if uri == "" || strings.HasPrefix(uri, "/") || strings.Contains(uri, "testdata") {
			errorf(path, "uri %q: want a reference relative to the configuration directory", uri)
		}
		if r, ok := p["region"]; ok {
			reg := obj(r, path+".physicalLocation.region")
			integer(reg, path+".physicalLocation.region", "startLine", 1, true)
			integer(reg, path+".physicalLocation.region", "startColumn", 1, false)
		}
		if m, ok := loc["message"]; ok {
			message(m, path+".message")
		}
	}

	if v := str(log, "$", "version", true); v != "2.1.0" {
		errorf("$.version", "%q, want 2.1.0", v)
	}
	str(log, "$", "$schema", false)
	runs := arr(log, "$", "runs", true)
	if len(runs) != 1 {
		t.Fatalf("want 1 run, got %d", len(runs))
	}
	run := obj(runs[0], "runs[0]")
	tool := obj(run["tool"], "runs[0].tool")
	driver := obj(tool["driver"], "runs[0].tool.driver")
	if str(driver, "driver", "name", true) != "ebpfc" {
		errorf("driver.name", "want ebpfc")
	}
	str(driver, "driver", "version", false)
	if u := str(driver, "driver", "informationUri", false); !strings.HasPrefix(u, "https://") {
		errorf("driver.informationUri", "%q is not an absolute URI", u)
	}
	var ruleIDs []string
	for i, r := range arr(driver, "driver", "rules", false) {
		path := fmt.Sprintf("driver.rules[%d]", i)
		rule := obj(r, path)
		ruleIDs = append(ruleIDs, str(rule, path, "id", true))
		message(rule["shortDescription"], path+".shortDescription")
		message(rule["help"], path+".help")
		if dc, ok := rule["defaultConfiguration"]; ok {
			checkLevel(t, str(obj(dc, path+".defaultConfiguration"), path, "level", false), path)
		}
	}
	if len(ruleIDs) != len(Checks()) {
		errorf("driver.rules", "%d rules, want one per check (%d)", len(ruleIDs), len(Checks()))
	}
	results := arr(run, "runs[0]", "results", true)
	for i, r := range results {
		path := fmt.Sprintf("results[%d]", i)
		res := obj(r, path)
		message(res["message"], path+".message")
		id := str(res, path, "ruleId", true)
		if n, ok := integer(res, path, "ruleIndex", 0, false); ok && (n >= len(ruleIDs) || ruleIDs[n] != id) {
			errorf(path, "ruleIndex %d does not name rule %s", n, id)
		}
		checkLevel(t, str(res, path, "level", false), path)
		locs := arr(res, path, "locations", false)
		if len(locs) != 1 {
			errorf(path, "want one location, got %d", len(locs))
		}
		for j, l := range locs {
			location(l, fmt.Sprintf("%s.locations[%d]", path, j))
		}
		for j, l := range arr(res, path, "relatedLocations", false) {
			location(l, fmt.Sprintf("%s.relatedLocations[%d]", path, j))
		}
	}
}

func checkLevel(t *testing.T, level, path string) {
	t.Helper()
	switch level {
	case "none", "note", "warning", "error":
	default:
		t.Errorf("SARIF %s: level %q is not one of none, note, warning, error", path, level)
	}
}

// TestMistakesFindEveryCheck makes sure the SARIF golden case exercises
// every model check and related locations, so the golden file shows each
// kind of result.
func TestMistakesFindEveryCheck(t *testing.T) {
	ids := map[string]bool{}
	related := false
	for _, f := range lintMistakes(t) {
		ids[f.ID] = true
		related = related || len(f.Related) > 0
	}
	for _, id := range []string{"EBPFC001", "EBPFC002", "EBPFC003", "EBPFC004", "EBPFC007", "EBPFC008", "EBPFC009"} {
		if !ids[id] {
			t.Errorf("testdata/mistakes has no %s finding", id)
		}
	}
	if !related {
		t.Errorf("no finding with related locations")
	}
}

var textLine = regexp.MustCompile(`^testdata/mistakes/[a-z]+\.cue:\d+:\d+: (error|warning|info): .+ \[EBPFC\d{3}\]$`)

func TestWriteText(t *testing.T) {
	findings := lintMistakes(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, findings); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2*len(findings) {
		t.Fatalf("%d lines for %d findings, want two each:\n%s", len(lines), len(findings), buf.String())
	}
	for i := 0; i < len(lines); i += 2 {
		if !textLine.MatchString(lines[i]) {
			t.Errorf("line %d: %q is not file:line:col: severity: message [id]", i+1, lines[i])
		}
		if !strings.HasPrefix(lines[i+1], "    hint: ") {
			t.Errorf("line %d: %q is not an indented hint", i+2, lines[i+1])
		}
	}
}

func TestWriteJSON(t *testing.T) {
	findings := lintMistakes(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, findings); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []map[string]any `json:"findings"`
		Counts   map[string]int   `json:"counts"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != len(findings) {
		t.Fatalf("%d findings in JSON, want %d", len(doc.Findings), len(findings))
	}
	total := 0
	for _, sev := range []string{"error", "warning", "info"} {
		total += doc.Counts[sev]
	}
	if total != len(findings) {
		t.Errorf("counts %v add up to %d, want %d", doc.Counts, total, len(findings))
	}
	for i, f := range doc.Findings {
		for _, key := range []string{"id", "name", "severity", "file", "line", "column", "message", "hint"} {
			if _, ok := f[key]; !ok {
				t.Errorf("finding %d has no %q: %v", i, key, f)
			}
		}
		if f["id"] != findings[i].ID || f["line"] != float64(findings[i].Pos.Line) {
			t.Errorf("finding %d is %v, want %s at line %d", i, f, findings[i].ID, findings[i].Pos.Line)
		}
	}
	// No findings is an empty list, not null.
	buf.Reset()
	if err := WriteJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"findings": []`) {
		t.Errorf("empty report: %s", buf.String())
	}
}

// TestDeterministic lints the same configuration twice and wants the same
// findings, in position order: map iteration must not leak into the output.
func TestDeterministic(t *testing.T) {
	a := lintMistakes(t)
	b := lintMistakes(t)
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("two runs differ:\n%s", d)
	}
	for i := 1; i < len(a); i++ {
		if compareFindings(a[i-1], a[i]) >= 0 {
			t.Errorf("findings %d and %d are out of order: %v, %v", i-1, i, a[i-1].Pos, a[i].Pos)
		}
	}
}
