package ir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/ebpfc/ebpfc/source"
)

// assertRoundTrip checks that text parses and prints back to itself.
func assertRoundTrip(t *testing.T, text string) {
	t.Helper()
	m, err := Parse("roundtrip.ir", []byte(text))
	if err != nil {
		t.Fatalf("parse printed module: %v\n%s", err, text)
	}
	if got := m.String(); got != text {
		t.Fatalf("round trip differs:\n%s", cmp.Diff(text, got))
	}
}

func TestPrintParseRoundTrip(t *testing.T) {
	m := sampleModule()
	text := m.String()
	assertRoundTrip(t, text)
	// The builder and the parser make the same structure, up to how they
	// fill fields the text does not show.
	back, err := Parse("sample.ir", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, back); diff != "" {
		t.Errorf("Parse(Print(m)) differs from m (-want +got):\n%s", diff)
	}
}

func TestPrintQuotesAwkwardNames(t *testing.T) {
	pb := NewProgram("has space", ProgXDP, "xdp/\"odd\"", source.Pos{File: "dir with space/a:b.cue", Line: 3, Col: 0})
	entry := pb.Block("ret") // a keyword
	next := pb.Block("v12")  // looks like a value
	entry.Ctx(source.Pos{File: "x\ty.cue", Line: 1, Col: 2})
	entry.Jump(source.Pos{File: "-", Line: 1, Col: 1}, next.Label())
	next.Return(Pos{}, 1)
	m := &Module{
		Name:     "",
		Consts:   []Const{{Name: "a b", Value: -9223372036854775808}},
		Programs: []*Program{pb.Program()},
	}
	text := m.String()
	for _, want := range []string{`module ""`, `const "a b" = -9223372036854775808`, `program "has space" xdp section "xdp/\"odd\"" @"dir with space/a:b.cue":3:0`, `"ret":`, `jump "v12"`, `@"x\ty.cue":1:2`, `@-:1:1`} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
	assertRoundTrip(t, text)
}

func TestParseErrorsHavePositions(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"module m\nprogram p xdp section \"xdp\" @-\nentry:\n  v0:ctx = ctx @-\n  ret\n", "bad.ir:6:1:"},
		{"module m\nconst c = 99999999999999999999\n", "bad.ir:2:1: integer 99999999999999999999 out of range"},
		{"module m\nmap x nosuch key k {a u32} value v {b u32} max 1 @-\n", `bad.ir:2:1: unknown map type "nosuch"`},
		{"module m\nmap x hash key k {a u12} value v {b u32} max 1 @-\n", `bad.ir:2:19: bad field type "u12"`},
		{"module m\nprogram p xdp section \"xdp\" @-\nentry:\n  v0:wat = ctx @-\n  ret 0 @-\n", `bad.ir:4:3: unknown type "wat"`},
		{"module m\nprogram p xdp section \"xdp\" @-\nentry:\n  v0:ctx = ctx @-\n  br v0 about 1 -> a, b @-\n", `bad.ir:5:3: unknown condition "about"`},
		{"module m\nprogram p xdp section \"xdp\" @-\nentry:\n  load.u8 v1 + 99999, v2 @-\n  ret 0 @-\n", "bad.ir:4:3: offset +99999 out of range"},
		{"module m\nprogram p xdp section \"xdp\" @-\nentry:\n  v1 = update m (1) @-\n  ret 0 @-\n", "bad.ir:4:8: update needs flags"},
		{"module m\n%\n", "bad.ir:2:1:"},
	} {
		_, err := Parse("bad.ir", []byte(tc.src))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error starting %q", tc.src, err, tc.want)
			continue
		}
		if _, ok := source.AsErrors(err); !ok {
			t.Errorf("Parse(%q) error is not a source.Errors: %T", tc.src, err)
		}
	}
}

// FuzzParse holds Parse to never panicking and to round-tripping whatever it
// accepts. It also holds Check to never panicking, and every pass to keeping
// a module Check accepts acceptable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleModule().String()))
	files, _ := filepath.Glob("testdata/passes/*.txtar")
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range ar.Files {
			f.Add(s.Data)
		}
	}
	if data, err := os.ReadFile("testdata/check_valid.ir"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := Parse("fuzz.ir", src)
		if err != nil {
			return
		}
		text := m.String()
		m2, err := Parse("fuzz.ir", []byte(text))
		if err != nil {
			t.Fatalf("printed module does not parse: %v\n%s", err, text)
		}
		if text2 := m2.String(); text2 != text {
			t.Fatalf("round trip differs:\n%s", cmp.Diff(text, text2))
		}
		if Check(m2) != nil {
			return
		}
		if err := Run(m2, RunOptions{Check: true}); err != nil {
			t.Fatalf("passes broke a valid module: %v\n%s", err, text)
		}
	})
}

// A program array with empty slots prints its filled slots with their
// indexes, and parses back to the same slots.
func TestPrintSparseSlots(t *testing.T) {
	pb := NewProgram("a", ProgSchedCLS, "tc", Pos{})
	pb.Block("entry").Return(Pos{}, 0)
	u32 := func(n string) Struct { return Struct{Name: n, Fields: []Field{{Name: "v", Size: 4}}} }
	m := &Module{
		Name:     "n",
		Maps:     []*Map{{Name: "progs", Type: MapProgArray, Key: u32("k"), Value: u32("v"), MaxEntries: 8, Slots: []string{"", "a", "", "", "a"}}},
		Programs: []*Program{pb.Program()},
	}
	text := m.String()
	if !strings.Contains(text, "slots [1: a, 4: a]") {
		t.Fatalf("sparse slots not listed by index:\n%s", text)
	}
	assertRoundTrip(t, text)
	back, err := Parse("sparse.ir", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.Maps[0].Slots, back.Maps[0].Slots); diff != "" {
		t.Errorf("slots after a round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"slots [4: a, 1: a]", "slots [8: a]"} {
		if _, err := Parse("bad.ir", []byte(strings.Replace(text, "slots [1: a, 4: a]", bad, 1))); err == nil {
			t.Errorf("%s parsed without an error", bad)
		}
	}
}
