package fs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"hutch/agent/internal/users"
)

func TestMetadataRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	md, err := CheckMetadata(map[string]string{"Owner": "agent-7", "step": "3"})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMetadata(p, md); err != nil {
		t.Skipf("this filesystem keeps no user xattrs: %v", err)
	}
	got := ReadMetadata(p)
	want := map[string]string{"owner": "agent-7", "step": "3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadMetadata = %v, want %v", got, want)
	}
	names := users.DB{PasswdPath: "/nonexistent", GroupPath: "/nonexistent"}.Names()
	if e, err := Stat(p, names); err != nil || !reflect.DeepEqual(e.Metadata, want) {
		t.Fatalf("Stat metadata = %v (%v), want %v", e, err, want)
	}
}

func TestCheckMetadataRefusesBadKeysAndValues(t *testing.T) {
	for _, md := range []map[string]string{{"": "v"}, {"a b": "v"}, {"k": string(make([]byte, 2000))}, {"k": "a\x00b"}} {
		if _, err := CheckMetadata(md); err == nil {
			t.Errorf("CheckMetadata(%q) accepted", md)
		}
	}
}
