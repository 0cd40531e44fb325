package ir

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestPassOrder holds the Passes table to the ordering constraints.
func TestPassOrder(t *testing.T) {
	index := map[string]int{}
	for i, p := range Passes {
		if _, dup := index[p.Name]; dup {
			t.Errorf("pass %s listed twice", p.Name)
		}
		if p.Doc == "" || p.Run == nil {
			t.Errorf("pass %s needs a Doc and a Run", p.Name)
		}
		index[p.Name] = i
	}
	for _, c := range passOrder {
		b, ok1 := index[c.before]
		a, ok2 := index[c.after]
		switch {
		case !ok1 || !ok2:
			t.Errorf("constraint %s before %s names a pass that is not in Passes", c.before, c.after)
		case b >= a:
			t.Errorf("pass %s must run before %s: %s", c.before, c.after, c.why)
		}
	}
}

// TestPasses runs the passes named on the first line of each archive under
// testdata/passes on its "in" section, checking the IR before and after
// each, and compares the result with its "out" section. EBPFC_UPDATE=1
// rewrites "out".
func TestPasses(t *testing.T) {
	files, err := filepath.Glob("testdata/passes/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no pass tests: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(string(ar.Comment), "\n")
			names, ok := strings.CutPrefix(header, "passes: ")
			if !ok {
				t.Fatalf("first line %q, want passes: name…", header)
			}
			var passes []Pass
			for _, n := range strings.Fields(names) {
				if n == "all" {
					passes = append(passes, Passes...)
					continue
				}
				p := passByName(n)
				if p == nil {
					t.Fatalf("no pass called %q", n)
				}
				passes = append(passes, *p)
			}
			in := section(t, ar, "in")
			m, err := Parse(file, in)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(m); err != nil {
				t.Fatalf("input:\n%v", err)
			}
			for _, p := range passes {
				if err := p.Run(m); err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				if err := Check(m); err != nil {
					t.Fatalf("after %s:\n%v\n%s", p.Name, err, m)
				}
			}
			got := m.String()
			if os.Getenv("EBPFC_UPDATE") != "" {
				setSection(ar, "out", got)
				if err := os.WriteFile(file, txtar.Format(ar), 0o666); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := string(section(t, ar, "out")); got != want {
				t.Errorf("got:\n%s\nwant:\n%s\n(EBPFC_UPDATE=1 rewrites)", got, want)
			}
			// The output is itself valid text: it parses back to itself.
			assertRoundTrip(t, got)
		})
	}
}

func section(t *testing.T, ar *txtar.Archive, name string) []byte {
	t.Helper()
	for _, f := range ar.Files {
		if f.Name == name {
			return f.Data
		}
	}
	if name == "out" {
		t.Fatalf("no %q section (EBPFC_UPDATE=1 writes it)", name)
	}
	t.Fatalf("no %q section", name)
	return nil
}

func setSection(ar *txtar.Archive, name, data string) {
	i := slices.IndexFunc(ar.Files, func(f txtar.File) bool { return f.Name == name })
	if i < 0 {
		ar.Files = append(ar.Files, txtar.File{Name: name})
		i = len(ar.Files) - 1
	}
	ar.Files[i].Data = []byte(data)
}

func TestRunDumpAfter(t *testing.T) {
	m := sampleModule()
	var dump bytes.Buffer
	if err := Run(m, RunOptions{Check: true, DumpAfter: "fold_constants", Dump: &dump}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dump.String(), "// after fold_constants\nmodule node-a\n") {
		t.Errorf("dump:\n%s", dump.String())
	}
	if strings.Contains(dump.String(), "param ") {
		t.Errorf("dump after fold_constants still has a param:\n%s", dump.String())
	}
	if err := Run(m, RunOptions{DumpAfter: "no_such_pass"}); err == nil {
		t.Error("Run accepted an unknown DumpAfter")
	}
}

func TestFoldUnknownParam(t *testing.T) {
	pb := NewProgram("p", ProgXDP, "xdp", Pos{})
	b := pb.Block("entry")
	b.Ctx(Pos{})
	b.Param(Pos{}, "nope")
	b.Return(Pos{}, 0)
	m := &Module{Name: "n", Programs: []*Program{pb.Program()}}
	if err := foldNodeConstants(m); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("got %v, want an error naming the unknown constant", err)
	}
}
