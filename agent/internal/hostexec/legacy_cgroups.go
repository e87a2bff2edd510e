package hostexec

import (
	"errors"
	"fmt"
	"syscall"
)

// HybridUnifiedMount is where a hybrid cgroup host (v1 controllers plus an
// empty cgroup2 hierarchy, systemd's "hybrid" layout) mounts cgroup2.
const HybridUnifiedMount = "/sys/fs/cgroup/unified"

// ExecWithLegacyCgroupView replaces this process with argv (crun) in a
// private mount namespace where the hybrid layout's cgroup2 mount is not
// visible, so the runtime sees a plain cgroup v1 host.
//
// Why: crun (1.8 at least) refuses hybrid hosts outright ("cgroups in hybrid
// mode not supported, drop all controllers from cgroupv2"), even with
// --cgroup-manager=disabled, although every controller it would use is a v1
// one there and it manages pure v1 hosts fine. The cgroup2 hierarchy of a
// hybrid host holds no controllers, so hiding it from crun changes nothing
// but the detection. Mounts the runtime makes for the container happen in the
// container's own mount namespace, copied from this one after the unmount, so
// the container does not see the cgroup2 mount either (as under runc, which
// mounts the container's /sys/fs/cgroup itself).
//
// Only returns on error.
func ExecWithLegacyCgroupView(argv []string) error {
	// Slave, not private: mounts the server makes on the host later still reach this namespace.
	return execInOwnMountNamespace(argv, syscall.MS_SLAVE, func() error {
		err := syscall.Unmount(HybridUnifiedMount, syscall.MNT_DETACH)
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("hide %s: %w", HybridUnifiedMount, err)
		}
		return nil
	})
}
