package files

import "testing"

func TestAcceptsGzip(t *testing.T) {
	cases := map[string]bool{
		"":                        false,
		"gzip":                    true,
		"deflate, gzip;q=1.0, br": true,
		"gzip;q=0":                false,
		"identity":                false,
		"br, GZIP ; q=0.5":        true,
		"x-gzip":                  true,
		"gzip; q=0.000, identity": false,
	}
	for in, want := range cases {
		if got := acceptsGzip(in); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}
