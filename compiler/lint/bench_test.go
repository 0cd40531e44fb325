package lint

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// largeModel is a configuration at the design's full scale for policy:
// 1k policies (two rules each) and 5k endpoints over 50 namespaces.
func largeModel() *model.Config {
	cfg := &model.Config{Settings: model.Settings{Enforcement: model.EnforceDefault}}
	pos := func(i int) source.Pos { return source.Pos{File: "large.cue", Line: i + 1, Col: 1} }
	for i := 0; i < 50; i++ {
		ns := fmt.Sprintf("ns-%d", i)
		cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{Name: ns, Labels: map[string]string{namespaceNameLabel: ns}})
	}
	for i := 0; i < 5000; i++ {
		cfg.Endpoints = append(cfg.Endpoints, &model.Endpoint{
			Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("ep-%d", i), Node: "node-a",
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i % 256)})},
			Labels:    map[string]string{"app": fmt.Sprintf("app-%d", i%100)}, Pos: pos(i),
		})
	}
	for i := 0; i < 1000; i++ {
		cfg.Policies = append(cfg.Policies, &model.Policy{
			Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("p-%d", i),
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i%100)}, Pos: pos(i)},
			Ingress: []*model.Rule{{
				HasPeers:  true,
				Endpoints: []*model.Selector{{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (i+1)%100)}, Pos: pos(i)}},
				Ports:     []*model.PortRule{{Port: uint16(8000 + i%10), Protocol: model.ProtoTCP, Pos: pos(i)}},
				Pos:       pos(i),
			}, {
				HasPeers: true,
				CIDRs:    []*model.CIDRPeer{{CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i % 256), 0}), 24), Pos: pos(i)}},
				Pos:      pos(i),
			}},
			Pos: pos(i),
		})
	}
	return cfg
}

// BenchmarkModelChecks runs the checks that do not compile (EBPFC001 to
// EBPFC009) on largeModel.
func BenchmarkModelChecks(b *testing.B) {
	cfg := largeModel()
	for b.Loop() {
		l := newLinter(cfg, Options{})
		for _, run := range runs[:len(runs)-1] {
			if err := run(l); err != nil {
				b.Fatal(err)
			}
		}
	}
}
