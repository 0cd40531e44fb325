package lint

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// TestValueChecksOnModel runs EBPFC005 and EBPFC006 on a model that did
// not come through the front end (which rejects both mistakes).
func TestValueChecksOnModel(t *testing.T) {
	at := func(line int) source.Pos { return source.Pos{File: "m.cue", Line: line, Col: 1} }
	cfg := &model.Config{
		Policies: []*model.Policy{{
			Namespace: "web", Name: "p", EndpointSelector: &model.Selector{Pos: at(1)}, Pos: at(1),
			Ingress: []*model.Rule{{
				HasPeers: true,
				CIDRs: []*model.CIDRPeer{
					{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}, Pos: at(2)},
					{CIDR: netip.MustParsePrefix("10.1.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}, Pos: at(3)},
				},
				Ports: []*model.PortRule{
					{Port: 90, EndPort: 80, Protocol: model.ProtoTCP, Pos: at(4)},
					{EndPort: 80, Protocol: model.ProtoTCP, Pos: at(5)},
					{Name: "http", EndPort: 80, Protocol: model.ProtoTCP, Pos: at(6)},
					{Port: 80, EndPort: 80, Protocol: model.ProtoTCP, Pos: at(7)},
				},
				Pos: at(2),
			}},
		}},
	}
	l := newLinter(cfg, Options{})
	if err := l.checkExcepts(); err != nil {
		t.Fatal(err)
	}
	if err := l.checkPortRanges(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range Sort(l.findings) {
		got = append(got, f.Pos.String()+" "+f.ID+" "+string(f.Severity))
	}
	want := []string{
		"m.cue:2:1 EBPFC005 error",
		"m.cue:4:1 EBPFC006 error",
		"m.cue:5:1 EBPFC006 error",
		"m.cue:6:1 EBPFC006 error",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLoadFindings holds the classification of load errors to the front
// end's messages: a reworded message must fail here, not fall back to
// EBPFC000 unnoticed.
func TestLoadFindings(t *testing.T) {
	cases := []struct {
		name, file, content, id, contains string
	}{
		{"syntax", "c.cue", "package ebpfc\n\npolicies: web: p: {endpointSelector: {}\n", "EBPFC000", "expected"},
		{"schema", "c.cue", "package ebpfc\n\nsettings: enforcement: \"sometimes\"\n", "EBPFC000", "sometimes"},
		{"except", "c.cue", "package ebpfc\n\npolicies: web: p: {endpointSelector: {}, egress: [{toCIDRSet: [{cidr: \"10.0.0.0/8\", except: [\"11.0.0.0/8\"]}]}]}\n", "EBPFC005", "11.0.0.0/8"},
		{"named port range", "c.cue", "package ebpfc\n\npolicies: web: p: {endpointSelector: {}, egress: [{toPorts: [{ports: [{port: \"http\", endPort: 90}]}]}]}\n", "EBPFC006", "named port"},
		{"Kubernetes inverted range", "np.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: web}
spec:
  podSelector: {}
  egress:
  - ports: [{port: 90, endPort: 80}]
`, "EBPFC006", "endPort 80"},
		{"Kubernetes named port range", "np.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: web}
spec:
  podSelector: {}
  egress:
  - ports: [{port: http, endPort: 80}]
`, "EBPFC006", "endPort"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeConfig(t, map[string]string{c.file: c.content}, true)
			findings, err := Dir(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) == 0 {
				t.Fatal("no findings")
			}
			for _, f := range findings {
				if f.ID != c.id || f.Severity != Error || !strings.HasSuffix(f.Pos.File, c.file) || !strings.Contains(f.Message, c.contains) {
					t.Errorf("got %s: %s [%s %s], want only %s findings in %s mentioning %q", f.Pos, f.Message, f.ID, f.Severity, c.id, c.file, c.contains)
				}
			}
		})
	}
}
