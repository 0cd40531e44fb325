package compiler_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/source"
)

// A golden case is a txtar archive under golden/. Its input files are the
// sections that end in .cue, .json, .yaml or .yml; a "packets" section (see package
// packettest) lists packets and the verdicts they must get in the kernel.
// The outputs are sections under out/: out/errors for a config that must
// be rejected, otherwise out/NODE/datapath.ir and out/NODE/datapath.s for
// every node. EBPFC_UPDATE=1 rewrites the outputs from the code.
const goldenDir = "../golden"

type goldenCase struct {
	name    string
	path    string
	archive *txtar.Archive
	inputs  fstest.MapFS
	names   []string
	packets string
}

func readGolden(t *testing.T) []*goldenCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden cases in %s", goldenDir)
	}
	var cases []*goldenCase
	for _, p := range paths {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		c := &goldenCase{name: strings.TrimSuffix(filepath.Base(p), ".txtar"), path: p, archive: ar, inputs: fstest.MapFS{}}
		for _, f := range ar.Files {
			switch {
			case f.Name == "packets":
				c.packets = string(f.Data)
			case strings.HasPrefix(f.Name, "out/"):
			case strings.HasSuffix(f.Name, ".cue") || strings.HasSuffix(f.Name, ".json") || strings.HasSuffix(f.Name, ".yaml") || strings.HasSuffix(f.Name, ".yml"):
				c.inputs[f.Name] = &fstest.MapFile{Data: f.Data}
				c.names = append(c.names, f.Name)
			default:
				t.Fatalf("%s: unknown section %q", p, f.Name)
			}
		}
		cases = append(cases, c)
	}
	return cases
}

// compileCase compiles a golden case's inputs and returns its output
// sections.
func compileCase(c *goldenCase, names []string) (map[string][]byte, []*compiler.Artifacts, error) {
	out := map[string][]byte{}
	cfg, err := load.LoadFS(c.inputs, names)
	var arts []*compiler.Artifacts
	if err == nil {
		arts, err = compiler.Compile(cfg, compiler.Options{CheckEveryPass: true})
	}
	if err != nil {
		errs, ok := source.AsErrors(err)
		if !ok {
			return nil, nil, err
		}
		var b bytes.Buffer
		for _, e := range errs {
			fmt.Fprintln(&b, e.Error())
		}
		out["out/errors"] = b.Bytes()
		return out, nil, nil
	}
	for _, a := range arts {
		out["out/"+a.Node+"/"+compiler.IRFile] = a.Files[compiler.IRFile]
		out["out/"+a.Node+"/"+compiler.ListingFile] = a.Files[compiler.ListingFile]
	}
	return out, arts, nil
}

func TestGolden(t *testing.T) {
	update := os.Getenv("EBPFC_UPDATE") == "1"
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := compileCase(c, c.names)
			if err != nil {
				t.Fatalf("internal error: %v", err)
			}
			if update {
				var files []txtar.File
				for _, f := range c.archive.Files {
					if !strings.HasPrefix(f.Name, "out/") {
						files = append(files, f)
					}
				}
				var keys []string
				for k := range got {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					files = append(files, txtar.File{Name: k, Data: got[k]})
				}
				c.archive.Files = files
				if err := os.WriteFile(c.path, txtar.Format(c.archive), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := map[string][]byte{}
			for _, f := range c.archive.Files {
				if strings.HasPrefix(f.Name, "out/") {
					want[f.Name] = f.Data
				}
			}
			for k := range want {
				if _, ok := got[k]; !ok {
					t.Errorf("%s: section %s is no longer produced (run with EBPFC_UPDATE=1 and review)", c.path, k)
				}
			}
			for k, g := range got {
				w, ok := want[k]
				if !ok {
					t.Errorf("%s: missing section %s (run with EBPFC_UPDATE=1 and review)", c.path, k)
					continue
				}
				if d := cmp.Diff(string(w), string(g)); d != "" {
					t.Errorf("%s: %s differs (-want +got):\n%s", c.path, k, d)
				}
			}
		})
	}
}

// TestGoldenCases keeps the golden corpus from thinning out: the foundation
// promises at least 15 cases, error cases among them.
func TestGoldenCases(t *testing.T) {
	cases := readGolden(t)
	errCases := 0
	for _, c := range cases {
		for _, f := range c.archive.Files {
			if f.Name == "out/errors" {
				errCases++
			}
		}
	}
	if len(cases) < 15 || errCases < 3 {
		t.Errorf("golden/ has %d cases (%d error cases); want at least 15 with at least 3 error cases", len(cases), errCases)
	}
}
