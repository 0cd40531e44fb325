package netpolcases

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
)

func TestCasesLoadAndParse(t *testing.T) {
	names := map[string]bool{}
	for _, c := range Cases() {
		if names[c.Name] {
			t.Errorf("case %q twice", c.Name)
		}
		names[c.Name] = true
		cfg, err := c.Load()
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if len(cfg.Endpoints) != 9 || len(cfg.Policies) == 0 {
			t.Errorf("%s: %d endpoints, %d policies", c.Name, len(cfg.Endpoints), len(cfg.Policies))
		}
		if len(c.Checks) == 0 {
			t.Errorf("%s: no checks", c.Name)
		}
		for _, ch := range c.Checks {
			for _, text := range []string{ch.Reachability, ch.Ebpfc} {
				if text == "" {
					continue
				}
				if _, err := ParseMatrix(text); err != nil {
					t.Errorf("%s %s/%d: %v", c.Name, ch.Protocol, ch.Port, err)
				}
			}
			if (ch.Ebpfc != "") != (c.Divergence != "") {
				t.Errorf("%s: an Ebpfc matrix needs a Divergence and the other way round", c.Name)
			}
		}
		for _, p := range c.Probes {
			if _, err := Resolve(p.From); err != nil {
				t.Error(err)
			}
			if _, err := Resolve(p.To); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestClusterMatchesPods(t *testing.T) {
	cfg, err := Cases()[0].Load()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range Pods() {
		ep := cfg.Endpoints[i]
		if ep.ID() != p.ID() || ep.Node != p.Node || !slices.Equal(ep.Addresses, []netip.Addr{p.Addr}) || ep.Labels["pod"] != p.Name {
			t.Errorf("endpoint %d is %s on %s at %v labels %v, want %+v", i, ep.ID(), ep.Node, ep.Addresses, ep.Labels, p)
		}
		if len(ep.NamedPorts) != len(ServedPorts)*len(ServedProtocols) {
			t.Errorf("%s: %d named ports", ep.ID(), len(ep.NamedPorts))
		}
	}
	for _, ns := range cfg.Namespaces {
		if ns.Labels["ns"] != ns.Name {
			t.Errorf("namespace %s labels %v", ns.Name, ns.Labels)
		}
	}
}

func TestMatrixRoundTripAndCompare(t *testing.T) {
	want, err := ParseMatrix(intoXABlocked)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseMatrix(want.String())
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(want, again); len(d) != 0 {
		t.Fatalf("round trip differs: %v", d)
	}
	// want blocks the 8 off-diagonal cells into x/a and allows the other 64.
	// The first prober differs from it only on the diagonal (x/a -> x/a),
	// which Compare ignores; the second allows only y/b -> x/a, so 64 + 1
	// cells differ.
	xa, yb := Pods()[0].Addr, Pods()[4].Addr
	got := Reach(model.ProtoTCP, 80, func(src, dst netip.Addr, _ model.Protocol, _ uint16) bool {
		return dst != xa || src == xa
	})
	if d := Compare(want, got); len(d) != 0 {
		t.Errorf("Compare reports %v for matrices equal off the diagonal", d)
	}
	got = Reach(model.ProtoTCP, 80, func(src, dst netip.Addr, _ model.Protocol, _ uint16) bool {
		return src == yb && dst == xa
	})
	d := Compare(want, got)
	if len(d) != 65 || !slices.Contains(d, "y/b -> x/a: allowed, want blocked") {
		t.Errorf("Compare = %d lines %v", len(d), d[:min(3, len(d))])
	}
}

func TestParseMatrixErrors(t *testing.T) {
	for _, text := range []string{
		"",
		"- x/a\nx/a .",
		allAllowed[:len(allAllowed)-3] + "?\n",
	} {
		if _, err := ParseMatrix(text); err == nil {
			t.Errorf("ParseMatrix(%q) succeeded", text)
		}
	}
}
