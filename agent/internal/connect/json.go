package connect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The proto3 JSON mapping writes 64-bit integers as strings, and readers must
// accept both quoted and bare numbers for every integer type. These types do
// exactly that so request structs can use them without custom code.

// Uint32 is a uint32 that decodes from a JSON number or a quoted number.
type Uint32 uint32

// UnmarshalJSON accepts 12, "12" and null.
func (u *Uint32) UnmarshalJSON(b []byte) error {
	v, err := parseJSONInt(b, 0, 32)
	if err != nil {
		return err
	}
	*u = Uint32(v)
	return nil
}

// Int64 is an int64 that encodes as a JSON string and decodes from either form.
type Int64 int64

// MarshalJSON writes the proto3 form: a quoted decimal.
func (i Int64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(i), 10) + `"`), nil
}

// UnmarshalJSON accepts 12, "12" and null.
func (i *Int64) UnmarshalJSON(b []byte) error {
	v, err := parseJSONInt(b, 1, 64)
	if err != nil {
		return err
	}
	*i = Int64(v)
	return nil
}

// parseJSONInt parses an optionally quoted integer. signed selects int64
// parsing (1) or unsigned parsing (0); bits bounds the range.
func parseJSONInt(b []byte, signed int, bits int) (int64, error) {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return 0, nil
	}
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
	}
	if signed == 1 {
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("invalid integer %q", s)
		}
		return v, nil
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("invalid unsigned integer %q", s)
	}
	return int64(v), nil
}

// Timestamp formats t as a google.protobuf.Timestamp JSON value: RFC 3339 in
// UTC with a "Z" suffix and only as many fractional digits as needed.
func Timestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
