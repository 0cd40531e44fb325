package explain

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseFlow(t *testing.T) {
	addr := netip.MustParseAddr
	tests := []struct {
		text string
		want Flow
	}{
		{"tcp 10.0.1.5:40000 -> 10.0.2.7:80 syn", Flow{
			Proto: "tcp",
			Src:   Peer{Addr: addr("10.0.1.5"), Port: 40000, HasPort: true, Col: 5},
			Dst:   Peer{Addr: addr("10.0.2.7"), Port: 80, HasPort: true, Col: 23},
			Flags: []string{"syn"},
		}},
		// Without flags a TCP flow is a SYN; without a source port it
		// gets a fixed one.
		{"tcp 10.0.1.5 > 10.0.2.7:80", Flow{
			Proto: "tcp",
			Src:   Peer{Addr: addr("10.0.1.5"), Port: 40000, Col: 5},
			Dst:   Peer{Addr: addr("10.0.2.7"), Port: 80, HasPort: true, Col: 16},
			Flags: []string{"syn"},
		}},
		// Flags come out in one order, whatever the order written.
		{"TCP 10.0.1.5:1 -> 10.0.2.7:2 psh ACK fin", Flow{
			Proto: "tcp",
			Src:   Peer{Addr: addr("10.0.1.5"), Port: 1, HasPort: true, Col: 5},
			Dst:   Peer{Addr: addr("10.0.2.7"), Port: 2, HasPort: true, Col: 19},
			Flags: []string{"ack", "fin", "psh"},
		}},
		{"udp from web/frontend-0 to 10.96.0.10:53", Flow{
			Proto: "udp",
			Src:   Peer{Endpoint: "web/frontend-0", Port: 40000, Col: 10},
			Dst:   Peer{Addr: addr("10.96.0.10"), Port: 53, HasPort: true, Col: 28},
		}},
		{"sctp a/b:9 -> c.d/e-f:36412 ", Flow{
			Proto: "sctp",
			Src:   Peer{Endpoint: "a/b", Port: 9, HasPort: true, Col: 6},
			Dst:   Peer{Endpoint: "c.d/e-f", Port: 36412, HasPort: true, Col: 15},
		}},
		{"icmp 8.8.8.8 -> 10.0.1.5", Flow{
			Proto: "icmp", Type: 8,
			Src: Peer{Addr: addr("8.8.8.8"), Col: 6},
			Dst: Peer{Addr: addr("10.0.1.5"), Col: 17},
		}},
		{"icmp 8.8.8.8 -> 10.0.1.5 type 3 code 4", Flow{
			Proto: "icmp", Type: 3, Code: 4,
			Src: Peer{Addr: addr("8.8.8.8"), Col: 6},
			Dst: Peer{Addr: addr("10.0.1.5"), Col: 17},
		}},
		{"icmpv6 fd00::1 -> [fd00::2] code 1", Flow{
			Proto: "icmpv6", Type: 128, Code: 1,
			Src: Peer{Addr: addr("fd00::1"), Col: 8},
			Dst: Peer{Addr: addr("fd00::2"), Col: 19},
		}},
		{"tcp [fd00::1]:1 -> [::ffff:10.0.0.1]:443 rst", Flow{
			Proto: "tcp",
			Src:   Peer{Addr: addr("fd00::1"), Port: 1, HasPort: true, Col: 5},
			Dst:   Peer{Addr: addr("::ffff:10.0.0.1"), Port: 443, HasPort: true, Col: 20},
			Flags: []string{"rst"},
		}},
		{"icmpv6 from default/web to ns/db", Flow{
			Proto: "icmpv6", Type: 128,
			Src: Peer{Endpoint: "default/web", Col: 13},
			Dst: Peer{Endpoint: "ns/db", Col: 28},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseFlow(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Text = tt.text
			if d := cmp.Diff(&tt.want, got, cmpopts.EquateComparable(netip.Addr{})); d != "" {
				t.Errorf("ParseFlow(%q) (-want +got):\n%s", tt.text, d)
			}
		})
	}
}

func TestParseFlowErrors(t *testing.T) {
	tests := []struct {
		text string
		col  int
		msg  string // a part of the message
	}{
		{"", 1, "empty flow: expected a protocol"},
		{"   ", 1, "empty flow"},
		{"tcp", 4, "expected an address"},
		{"tcp 10.0.1.5:1", 15, `expected "->" or "to"`},
		{"tcp 10.0.1.5:1 10.0.2.7:80", 16, `expected "->" or "to" between the source and the destination, found "10.0.2.7"`},
		{"tcp 10.0.1.5:1 -> ", 19, "expected an address (a.b.c.d, an IPv6 address, or [IPv6] before a port) or an endpoint NAMESPACE/NAME, found the end of the flow"},
		{"tcp 10.0.1.5:1 -> syn", 19, `expected an address`},
		{"tcp 10.0.1.5:x -> 10.0.2.7:80", 14, `expected a port number (0-65535), found "x"`},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:", 28, "expected a port number after ':', found the end of the flow"},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:70000", 28, `expected a port number (0-65535), found "70000"`},
		{"tcp 10.0.1.5:1 -> 10.0.2.7", 27, "expected ':PORT' after the destination: tcp needs a destination port"},
		{"tcp 10.0.1.5:1 => 10.0.2.7:80", 16, `unexpected character '='`},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 $", 31, `unexpected character '$'`},
		{"ftp 10.0.1.5:1 -> 10.0.2.7:80", 1, `unknown protocol "ftp": expected a protocol (tcp, udp, sctp, icmp or icmpv6)`},
		{"tcp 10.0.1.256:1 -> 10.0.2.7:80", 5, `bad address "10.0.1.256"`},
		// A bare IPv6 address takes no port: this one is fd00::1:80.
		{"tcp fd00::1:80 -> 10.0.2.7:80", 19, "the source fd00::1:80 and the destination 10.0.2.7 are of different IP families"},
		{"tcp [fd00::1]:80 -> 10.0.2.7:80", 21, "different IP families"},
		{"tcp [zz::1]:80 -> [fd00::2]:80", 5, "bad IPv6 address [zz::1]"},
		{"tcp [10.0.0.1]:80 -> [fd00::2]:80", 5, "bad IPv6 address"},
		{"udp 10.0.1.5:1 -> 10.0.2.7:53 syn", 31, "syn is a TCP flag, and the flow is udp"},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 syn syn", 35, "syn is given twice"},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 urg", 31, `unknown option "urg": expected an option (syn, ack, fin, rst, psh, type N, code N)`},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 syn 5", 35, "unexpected number 5"},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 type 3", 31, "type is for icmp and icmpv6 flows"},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 ->", 31, `expected an option (syn, ack, fin, rst, psh, type N, code N), found "->"`},
		{"icmp 8.8.8.8:1 -> 10.0.1.5", 14, "icmp has no ports: remove ':1'"},
		{"icmp 8.8.8.8 -> 10.0.1.5 type", 30, "expected a number (0-255) after type, found the end of the flow"},
		{"icmp 8.8.8.8 -> 10.0.1.5 type 256", 31, `expected a number (0-255) after type, found "256"`},
		{"icmp 8.8.8.8 -> 10.0.1.5 code echo", 31, `expected a number (0-255) after code, found "echo"`},
		{"icmp fd00::1 -> fd00::2", 6, "write icmpv6 for ICMP over IPv6"},
		{"icmpv6 10.0.0.1 -> fd00::2", 8, "icmpv6 needs IPv6 addresses"},
		// Columns count characters, not bytes.
		{"tcp é", 5, `unexpected character 'é'`},
		{"tcp 10.0.1.5:1 -> 10.0.2.7:80 é", 31, `unexpected character 'é'`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			f, err := ParseFlow(tt.text)
			if err == nil {
				t.Fatalf("ParseFlow(%q) = %v, want an error", tt.text, f)
			}
			var fe *FlowError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFlow(%q): %T %v, want a *FlowError", tt.text, err, err)
			}
			if fe.Col != tt.col || !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("ParseFlow(%q) = %v, want column %d and %q", tt.text, err, tt.col, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "flow:1:") {
				t.Errorf("error %q does not start with flow:1:COL", err)
			}
			lines := strings.Split(fe.Caret(), "\n")
			if len(lines) != 2 || strings.Index(lines[1], "^") != tt.col+1 {
				t.Errorf("caret for column %d misplaced:\n%s", tt.col, fe.Caret())
			}
		})
	}
}

// FuzzParseFlow checks that no text makes the parser panic, that errors
// point inside the text (or just after it), and that a parsed flow prints
// in a form that parses back to the same flow.
func FuzzParseFlow(f *testing.F) {
	for _, s := range []string{
		"tcp 10.0.1.5:40000 -> 10.0.2.7:80 syn",
		"udp from web/frontend-0 to 10.96.0.10:53",
		"icmp 8.8.8.8 -> 10.0.1.5 type 3 code 4",
		"icmpv6 [fd00::1] -> fd00::2",
		"sctp a/b:1 > [::1]:2",
		"tcp 1.2.3.4:1 -> 1.2.3.4:80 ack psh fin rst",
		"tcp [",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fl, err := ParseFlow(text)
		if err != nil {
			var fe *FlowError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFlow(%q): %T %v, want a *FlowError", text, err, err)
			}
			if n := len([]rune(text)); fe.Col < 1 || fe.Col > n+1 {
				t.Fatalf("ParseFlow(%q): column %d outside the text (%d characters)", text, fe.Col, n)
			}
			_ = fe.Caret()
			return
		}
		again, err := ParseFlow(fl.String())
		if err != nil {
			t.Fatalf("ParseFlow(%q) printed as %q, which does not parse: %v", text, fl.String(), err)
		}
		ignore := cmpopts.IgnoreFields(Flow{}, "Text")
		if d := cmp.Diff(fl, again, cmpopts.EquateComparable(netip.Addr{}), ignore, cmpopts.IgnoreFields(Peer{}, "Col", "HasPort")); d != "" {
			t.Fatalf("ParseFlow(%q) printed as %q parses differently (-first +again):\n%s", text, fl.String(), d)
		}
		if fl.Src.Addr.IsValid() && fl.Dst.Addr.IsValid() {
			if _, err := fl.Frame(); err != nil {
				t.Fatalf("ParseFlow(%q): %v", text, err)
			}
		}
	})
}
