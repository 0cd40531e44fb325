package load

import (
	"net/netip"
	"testing"
)

// TestParsePrefixMapped checks that prefixes of IPv4-mapped IPv6 addresses
// are read as the IPv4 prefixes they stand for, and that other prefixes are
// kept as written.
func TestParsePrefixMapped(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:0:0/96", "0.0.0.0/0"},
		{"::ffff:10.1.0.0/112", "10.1.0.0/16"},
		{"::ffff:192.0.2.7/128", "192.0.2.7/32"},
		{"::fffe:0:0/95", "::fffe:0:0/95"},
		{"::/0", "::/0"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"2001:db8::/32", "2001:db8::/32"},
	} {
		p, msg := parsePrefix(tc.in)
		if msg != "" {
			t.Errorf("parsePrefix(%q): %s", tc.in, msg)
			continue
		}
		if p != netip.MustParsePrefix(tc.want) {
			t.Errorf("parsePrefix(%q) = %s, want %s", tc.in, p, tc.want)
		}
	}
}
