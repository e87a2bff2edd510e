package fs

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
)

// File metadata, as E2B's envd keeps it: user extended attributes named
// "user.e2b.<key>". Keys are lowercased; only regular files and directories
// carry them (Linux allows no user xattrs on symlinks).
const metadataPrefix = "user.e2b."

var metadataKey = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// maxMetadataValue bounds one value (ext4 keeps xattrs in a single block).
const maxMetadataValue = 1024

// CheckMetadata validates keys (lowercased) and values before anything is written.
func CheckMetadata(md map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(md))
	for k, v := range md {
		key := strings.ToLower(k)
		if !metadataKey.MatchString(key) {
			return nil, fmt.Errorf("metadata key %q: use 1-128 of a-z, 0-9, '.', '_', '-'", k)
		}
		if len(v) > maxMetadataValue || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("metadata %q: the value must be at most %d bytes, without NUL", k, maxMetadataValue)
		}
		out[key] = v
	}
	return out, nil
}

// WriteMetadata sets each key as an extended attribute of path.
func WriteMetadata(path string, md map[string]string) error {
	for k, v := range md {
		if err := syscall.Setxattr(path, metadataPrefix+k, []byte(v), 0); err != nil {
			return fmt.Errorf("set metadata %q on %s: %w", k, path, err)
		}
	}
	return nil
}

// ReadMetadata returns the file's metadata, or nil when it has none (or the
// filesystem keeps no extended attributes).
func ReadMetadata(path string) map[string]string {
	size, err := syscall.Listxattr(path, nil)
	if err != nil || size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	if size, err = syscall.Listxattr(path, buf); err != nil {
		return nil
	}
	var out map[string]string
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if !strings.HasPrefix(name, metadataPrefix) {
			continue
		}
		value := make([]byte, maxMetadataValue)
		n, err := syscall.Getxattr(path, name, value)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.TrimPrefix(name, metadataPrefix)] = string(value[:n])
	}
	return out
}
