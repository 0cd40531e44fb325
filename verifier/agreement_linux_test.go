//go:build linux

package verifier_test

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/internal/testenv"
	ebpfruntime "github.com/ebpfc/ebpfc/runtime"
	"github.com/ebpfc/ebpfc/verifier"
)

// kernelSpec is the collection as cilium/ebpf loads it: maps by name,
// program arrays empty (their programs are not all loaded).
func kernelSpec(c *verifier.Collection) *ebpf.CollectionSpec {
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}}
	for _, m := range c.Maps {
		spec.Maps[m.Name] = &ebpf.MapSpec{Name: m.Name, Type: m.Type, KeySize: m.KeySize, ValueSize: m.ValueSize,
			MaxEntries: m.MaxEntries, Flags: m.Flags}
	}
	for _, p := range c.Programs {
		spec.Programs[p.Name] = &ebpf.ProgramSpec{Name: p.Name, Type: p.Type, AttachType: p.AttachType,
			Instructions: p.Insns, License: license}
	}
	return spec
}

var processedRE = regexp.MustCompile(`processed (\d+) insns`)

// kernelLoad loads spec through the kernel's verifier and returns the
// processed-instruction count per program. unprivileged drops
// CAP_SYS_ADMIN and CAP_PERFMON from the effective set of the loading
// thread (keeping CAP_BPF and CAP_NET_ADMIN), so the kernel verifies as
// for a loader without CAP_PERFMON.
func kernelLoad(spec *ebpf.CollectionSpec, unprivileged bool) (map[string]int, error) {
	type result struct {
		counts map[string]int
		err    error
	}
	load := func() result {
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
			Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
		})
		if err != nil {
			return result{err: err}
		}
		defer coll.Close()
		counts := map[string]int{}
		for name, p := range coll.Programs {
			if m := processedRE.FindStringSubmatch(p.VerifierLog); m != nil {
				counts[name], _ = strconv.Atoi(m[1])
			}
		}
		return result{counts: counts}
	}
	if !unprivileged {
		r := load()
		return r.counts, r.err
	}
	done := make(chan result)
	go func() {
		// The thread is never unlocked: it ends with this goroutine, and
		// its reduced capabilities with it.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- result{err: fmt.Errorf("capget: %w", err)}
			return
		}
		for _, c := range []uint{unix.CAP_SYS_ADMIN, unix.CAP_PERFMON} {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- result{err: fmt.Errorf("capset: %w", err)}
			return
		}
		done <- load()
	}()
	r := <-done
	return r.counts, r.err
}

// TestAgreementWithKernel is the agreement between ebpfc's verifier and
// the kernel's: every generated and hand-built valid program is accepted
// by both (their processed-instruction counts are logged side by side),
// and every mutant is rejected by both.
func TestAgreementWithKernel(t *testing.T) {
	testenv.RequireKernel(t)

	accepted, total := 0, 0
	var sumEst, sumKernel int
	minRatio, maxRatio := 1e9, 0.0
	logCounts := func(name string, r *verifier.Result, kernel int) {
		ratio := float64(r.Processed) / float64(max(kernel, 1))
		minRatio, maxRatio = min(minRatio, ratio), max(maxRatio, ratio)
		sumEst += r.Processed
		sumKernel += kernel
		t.Logf("%-58s %5d insns  estimated %6d  kernel %6d  ratio %.2f", name, r.Insns, r.Processed, kernel, ratio)
	}

	for _, g := range compileCorpus(t) {
		rep := staticFromELF(t, g.art)
		a, err := ebpfruntime.ParseArtifacts(g.name, g.art.Files)
		if err != nil {
			t.Fatal(err)
		}
		dp, kerr := ebpfruntime.Load(a)
		kernel := map[string]int{}
		if kerr == nil {
			for _, st := range dp.Stats {
				kernel[st.Name] = st.Processed
			}
			dp.Close()
		}
		for _, r := range rep.Programs {
			total++
			switch {
			case kerr != nil && r.OK():
				t.Errorf("%s: the kernel rejected the node, ebpfc's verifier accepted %s: %v", g.name, r.Name, kerr)
			case kerr == nil && !r.OK():
				t.Errorf("%s/%s: accepted by the kernel, rejected by ebpfc's verifier: %v", g.name, r.Name, verifier.Errors(r.Errors))
			case kerr == nil:
				accepted++
				logCounts(g.name+"/"+r.Name, r, kernel[r.Name])
			}
		}
	}
	hand := handBuilt()
	names := make([]string, 0, len(hand))
	for n := range hand {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		c := hand[name]
		total++
		rep := verifier.Verify(c)
		kernel, kerr := kernelLoad(kernelSpec(c), false)
		switch {
		case kerr != nil:
			t.Errorf("hand-built %s: rejected by the kernel: %v", name, kerr)
		case !rep.Programs[0].OK():
			t.Errorf("hand-built %s: rejected by ebpfc's verifier: %v", name, rep.Err())
		default:
			accepted++
			logCounts("hand-built/"+name, rep.Programs[0], kernel[c.Programs[0].Name])
		}
	}

	// The unprivileged loader must be able to load valid programs, or its
	// rejections would prove nothing.
	if _, err := kernelLoad(kernelSpec(hand["conntrack_update"]), true); err != nil {
		t.Fatalf("a valid program does not load without CAP_PERFMON: %v", err)
	}
	ms := allMutants(t)
	rejected := 0
	for _, m := range ms {
		rep := verifier.Verify(m.coll)
		static := rep.Err()
		_, kerr := kernelLoad(kernelSpec(m.coll), m.unprivileged)
		var ve *ebpf.VerifierError
		kernelRejected := errors.As(kerr, &ve)
		switch {
		case kerr != nil && !kernelRejected:
			t.Errorf("mutant %s: the kernel load failed outside the verifier: %v", m.name, kerr)
		case !kernelRejected:
			t.Errorf("mutant %s: accepted by the kernel (unprivileged=%v)", m.name, m.unprivileged)
		case static == nil:
			t.Errorf("mutant %s: accepted by ebpfc's verifier; the kernel said: %v", m.name, lastLine(ve))
		default:
			rejected++
			t.Logf("mutant %-40s kernel: %-60s ebpfc: %s", m.name, lastLine(ve), rep.Errors()[0].Msg)
		}
	}
	t.Logf("agreement: %d/%d programs accepted by both, %d/%d mutants rejected by both", accepted, total, rejected, len(ms))
	if sumKernel > 0 {
		t.Logf("processed-instruction estimate: total %d vs kernel %d (ratio %.3f), per program %.2f..%.2f",
			sumEst, sumKernel, float64(sumEst)/float64(sumKernel), minRatio, maxRatio)
	}
}

// lastLine is the kernel's reason: the last non-empty line of its log
// before the statistics.
func lastLine(ve *ebpf.VerifierError) string {
	for i := len(ve.Log) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ve.Log[i])
		if l == "" || strings.HasPrefix(l, ";") || strings.Contains(l, " state: ") || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time") ||
			strings.HasPrefix(l, "stack depth") || strings.HasPrefix(l, "mark_precise") {
			continue
		}
		return l
	}
	return ve.Error()
}
