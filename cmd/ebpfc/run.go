package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/source"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
	"github.com/ebpfc/ebpfc/vm/asmtext"
)

func init() {
	register(command{"run", "run a compiled program in ebpfc's interpreter", runRun, 50})
}

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "ebpfc run OUT/NODE 'PROGRAM PACKET [=> pass|drop]'... | ebpfc run --asm FILE",
		`Runs programs in ebpfc's eBPF interpreter, without a kernel.

With a node directory (OUT/NODE, written by 'ebpfc compile'), each argument
is a packet in the syntax of the golden cases: the program, the protocol,
addresses and options, for example
  'to_default_web tcp 192.168.1.10:40000 > 10.0.1.5:80 syn'
The maps start with the node's initial contents (maps.json) and keep their
changes from one packet to the next. For each packet it prints the verdict,
the return value, the tail calls taken, the map lookups and the map
changes. A packet line may end in '=> pass' or '=> drop': a different
verdict is then an error.

With --asm, FILE is a conformance-style file (sections '-- asm', '-- mem',
'-- result') or plain assembly in the same syntax. It runs with the memory
in r1 and its length in r2 and prints r0; when the file has a '-- result',
a different r0 is an error.

Exit codes: 0 success, 1 a program faulted, a verdict or result differs, or
the assembly has errors, 2 usage errors, 3 internal errors.`, stderr)
	asmFile := fs.String("asm", "", "run the program in this assembly (.data) file")
	memHex := fs.String("mem", "", "with --asm: memory for r1 as hex bytes (default: the file's -- mem)")
	trace := fs.Bool("trace", false, "print every instruction executed")
	cpu := fs.Int("cpu", 0, "the CPU the program runs on (per-CPU maps, bpf_get_smp_processor_id)")
	ncpu := fs.Int("ncpu", 1, "the number of CPUs per-CPU maps hold values for")
	pos, code, ok := parseArgs(fs, args, stdout)
	if !ok {
		return code
	}
	opts := vm.Options{CPU: *cpu, NumCPU: *ncpu}
	if *cpu < 0 || *ncpu < 1 || *cpu >= *ncpu {
		fmt.Fprintf(stderr, "ebpfc run: --cpu %d is not one of --ncpu %d CPUs\n", *cpu, *ncpu)
		return exitUsage
	}
	if *asmFile != "" {
		if len(pos) != 0 {
			fmt.Fprintf(stderr, "ebpfc run: --asm takes no other arguments, got %q\n", pos)
			return exitUsage
		}
		return runAsm(*asmFile, *memHex, *trace, opts, stdout, stderr)
	}
	if *memHex != "" {
		fmt.Fprintf(stderr, "ebpfc run: --mem needs --asm\n")
		return exitUsage
	}
	if len(pos) < 2 {
		fmt.Fprintf(stderr, "ebpfc run: want a node directory and at least one packet, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	return runPackets(pos[0], pos[1:], *trace, opts, stdout, stderr)
}

// stepPrinter prints every instruction.
type stepPrinter struct {
	vm.NopTracer
	w io.Writer
}

func (p *stepPrinter) Step(s *vm.Step) {
	fmt.Fprintf(p.w, "    %s %4d: %v\n", s.Program, s.Index, *s.Insn)
}

func runAsm(file, memHex string, trace bool, opts vm.Options, stdout, stderr io.Writer) int {
	src, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc run: %v\n", err)
		return exitUsage
	}
	d, err := asmtext.ParseData(file, src)
	if err != nil {
		return reportError(stderr, "run", err)
	}
	prog, err := d.Program()
	if !d.HasAsm && !d.HasRaw {
		prog, err = asmtext.Assemble(file, 1, string(src))
	}
	if err != nil {
		if errs, ok := source.AsErrors(err); ok {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "ebpfc run: %s does not assemble\n", file)
			return exitConfig
		}
		fmt.Fprintf(stderr, "ebpfc run: %s: %v\n", file, err)
		return exitConfig
	}
	mem := d.Mem
	if memHex != "" {
		mem, err = hex.DecodeString(strings.Join(strings.Fields(memHex), ""))
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc run: --mem: %v\n", err)
			return exitUsage
		}
	}
	if trace {
		opts.Tracer = &stepPrinter{w: stdout}
	}
	res, err := vm.RunMem(prog, mem, opts)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc run: %s: %v\n", file, err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "r0 = %#x (%d instructions executed)\n", res.Return, res.Instructions)
	for _, l := range res.Printk {
		fmt.Fprintf(stdout, "trace_printk: %s\n", l)
	}
	if d.HasResult && res.Return != d.Result {
		fmt.Fprintf(stderr, "ebpfc run: %s: r0 is %#x, the file expects %#x\n", file, res.Return, d.Result)
		return exitConfig
	}
	return exitOK
}

// packetTracer records the map lookups and tail calls of one run.
type packetTracer struct {
	vm.NopTracer
	steps   *stepPrinter
	lookups []vm.MapLookup
	tails   []vm.TailCall
}

func (p *packetTracer) Step(s *vm.Step) {
	if p.steps != nil {
		p.steps.Step(s)
	}
}
func (p *packetTracer) MapLookup(l *vm.MapLookup) { p.lookups = append(p.lookups, *l) }
func (p *packetTracer) TailCall(t *vm.TailCall)   { p.tails = append(p.tails, *t) }

func runPackets(dir string, lines []string, trace bool, opts vm.Options, stdout, stderr io.Writer) int {
	if _, err := os.Stat(filepath.Join(dir, compiler.ManifestFile)); err != nil {
		fmt.Fprintf(stderr, "ebpfc run: %s is not a compiled node directory (no %s); pass OUT/NODE as written by 'ebpfc compile'\n", dir, compiler.ManifestFile)
		return exitUsage
	}
	a, err := artifact.Read(dir)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc run: %v\n", err)
		return exitConfig
	}
	tr := &packetTracer{}
	if trace {
		tr.steps = &stepPrinter{w: stdout}
	}
	opts.Tracer = tr
	m, err := a.Machine(opts)
	if err != nil {
		fmt.Fprintf(stderr, "ebpfc run: %v\n", err)
		return exitConfig
	}
	layouts := map[string]compiler.ManifestMap{}
	for _, mm := range a.Manifest.Maps {
		layouts[mm.Name] = mm
	}
	failed := false
	for i, line := range lines {
		arg := fmt.Sprintf("packet %d", i+1)
		parsed := line
		checkVerdict := strings.Contains(line, "=>")
		if !checkVerdict {
			parsed += " => pass"
		}
		pc, err := packettest.Parse(parsed)
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc run: %s: %v\n", arg, err)
			return exitUsage
		}
		typ, ok := m.ProgramType(pc.Program)
		if !ok {
			fmt.Fprintf(stderr, "ebpfc run: %s: no program %q in %s (have %s)\n", arg, pc.Program, dir, strings.Join(m.Programs(), ", "))
			return exitUsage
		}
		pkt, err := pc.Build()
		if err != nil {
			fmt.Fprintf(stderr, "ebpfc run: %s: %v\n", arg, err)
			return exitUsage
		}
		var ctx vm.Context
		switch typ {
		case ebpf.XDP:
			ctx = &vm.XDP{Packet: pkt, IngressIfindex: 1}
		case ebpf.SchedCLS, ebpf.SchedACT:
			ctx = vm.NewSKB(pkt)
		default:
			fmt.Fprintf(stderr, "ebpfc run: %s: program %s is a %s program; only tc and XDP programs take packets\n", arg, pc.Program, typ)
			return exitUsage
		}
		tr.lookups, tr.tails = nil, nil
		before := m.Snapshot()
		fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(line))
		res, err := m.Run(pc.Program, ctx)
		if err != nil {
			fmt.Fprintf(stdout, "  fault: %v\n", err)
			failed = true
			continue
		}
		verdict, action, isPass := verdictName(typ, res.Return)
		fmt.Fprintf(stdout, "  verdict: %s (%s, r0 = %d), %d instructions\n", verdict, action, int64(res.Return), res.Instructions)
		for _, t := range tr.tails {
			target := t.Target
			if target == "" {
				target = "(failed: empty slot or limit reached)"
			}
			fmt.Fprintf(stdout, "  tail call: %s -> %s[%d] -> %s\n", t.Program, t.Map, t.Slot, target)
		}
		for _, l := range tr.lookups {
			lay := layouts[l.Map]
			result := "miss"
			if l.Value != nil {
				result = formatStruct(lay.Value, l.Value)
			}
			fmt.Fprintf(stdout, "  lookup: %s %s %s -> %s\n", l.Program, l.Map, formatStruct(lay.Key, l.Key), result)
		}
		for _, c := range vm.Diff(before, m.Snapshot()) {
			fmt.Fprintf(stdout, "  map change: %s %s: %s -> %s\n", c.Map, formatStruct(layouts[c.Map].Key, c.Key),
				formatValues(layouts[c.Map].Value, c.Before), formatValues(layouts[c.Map].Value, c.After))
			if len(c.Key) == 4 {
				fmt.Fprint(stdout, explainCounter(a.Manifest, c.Map, binary.LittleEndian.Uint32(c.Key)))
			}
		}
		for _, l := range res.Printk {
			fmt.Fprintf(stdout, "  trace_printk: %s\n", l)
		}
		if checkVerdict && isPass != pc.Pass {
			want := "drop"
			if pc.Pass {
				want = "pass"
			}
			fmt.Fprintf(stderr, "ebpfc run: %s: verdict %s, the line expects %s\n", arg, verdict, want)
			failed = true
		}
	}
	if failed {
		return exitConfig
	}
	return exitOK
}

// explainCounter says which rule or drop reason a counter of the datapath's
// statistics maps (see docs/datapath.md) stands for.
func explainCounter(man *compiler.Manifest, mapName string, idx uint32) string {
	switch mapName {
	case "rule_stats":
		for _, c := range man.Cookies {
			if c.ID == idx {
				what := c.Kind
				if c.Policy != "" {
					what += fmt.Sprintf(" by policy %s %s rule %d", c.Policy, c.Direction, c.Rule)
				} else if c.Endpoint != "" {
					what += fmt.Sprintf(" of %s (%s)", c.Endpoint, c.Direction)
				}
				return fmt.Sprintf("    rule cookie %d: %s at %s\n", idx, what, c.Position)
			}
		}
	case "drop_stats":
		if int(idx) < len(man.DropReasons) {
			return fmt.Sprintf("    drop reason %d: %s\n", idx, man.DropReasons[idx])
		}
	}
	return ""
}

// verdictName names a return value, with the action constant, and says
// whether it lets the packet through.
func verdictName(typ ebpf.ProgramType, r0 uint64) (string, string, bool) {
	if typ == ebpf.XDP {
		switch r0 {
		case 0:
			return "drop", "XDP_ABORTED", false
		case 1:
			return "drop", "XDP_DROP", false
		case 2:
			return "pass", "XDP_PASS", true
		case 3:
			return "pass", "XDP_TX", true
		case 4:
			return "redirect", "XDP_REDIRECT", true
		}
		return "unknown", "not an XDP action", false
	}
	switch int32(r0) {
	case -1:
		return "pass", "TC_ACT_UNSPEC", true
	case 0:
		return "pass", "TC_ACT_OK", true
	case 2:
		return "drop", "TC_ACT_SHOT", false
	case 7:
		return "redirect", "TC_ACT_REDIRECT", true
	}
	return "unknown", "not a tc action the datapath uses", true
}

// formatStruct shows b field by field as the manifest lays it out, or as
// hex without a layout.
func formatStruct(s compiler.ManifestStruct, b []byte) string {
	if len(s.Fields) == 0 || s.Size != len(b) {
		return hex.EncodeToString(b)
	}
	var parts []string
	for i := 0; i < len(s.Fields); i++ {
		f := s.Fields[i]
		if f.Offset+f.Size > len(b) {
			return hex.EncodeToString(b)
		}
		if name, ok := ip6Fields(s.Fields[i:]); ok {
			// addr0..addr3: one IPv6 address in four big-endian words.
			parts = append(parts, name+"="+netip.AddrFrom16([16]byte(b[f.Offset:f.Offset+16])).String())
			i += 3
			continue
		}
		fb := b[f.Offset : f.Offset+f.Size]
		parts = append(parts, f.Name+"="+formatField(f, fb))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// ip6Fields reports whether fs starts with NAME0..NAME3, four contiguous
// big-endian u32 fields, and returns NAME.
func ip6Fields(fs []compiler.ManifestField) (string, bool) {
	if len(fs) < 4 {
		return "", false
	}
	name, ok := strings.CutSuffix(fs[0].Name, "0")
	if !ok {
		return "", false
	}
	for i, f := range fs[:4] {
		if f.Name != fmt.Sprintf("%s%d", name, i) || !f.BigEndian || f.Size != 4 || f.Offset != fs[0].Offset+4*i {
			return "", false
		}
	}
	return name, true
}

func formatField(f compiler.ManifestField, b []byte) string {
	if f.BigEndian && len(b) == 4 {
		return netip.AddrFrom4([4]byte(b)).String()
	}
	if f.BigEndian && len(b) == 16 {
		return netip.AddrFrom16([16]byte(b)).String()
	}
	var v uint64
	switch {
	case f.BigEndian:
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
	case len(b) == 8:
		v = binary.LittleEndian.Uint64(b)
	default:
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
	}
	return fmt.Sprint(v)
}

func formatValues(s compiler.ManifestStruct, vs [][]byte) string {
	if vs == nil {
		return "absent"
	}
	var parts []string
	for _, v := range vs {
		parts = append(parts, formatStruct(s, v))
	}
	return strings.Join(parts, " | ")
}
