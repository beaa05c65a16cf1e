package metal

import (
	"sync"

	"github.com/loomrt/loom/metal/mtl"
	"github.com/loomrt/loom/runtime"
)

var (
	openOnce sync.Once
	openDev  *Device
	openErr  error
)

// Open returns the system's default Metal device, or an error off macOS
// ("Metal is available on macOS only"). The kernel library is compiled on
// the first call (this takes a few seconds) and the device is shared by
// later calls; each runtime makes its own queue on it.
func Open() (runtime.Device, error) {
	openOnce.Do(func() {
		dev, err := mtl.Default()
		if err != nil {
			openErr = err
			return
		}
		openDev, openErr = New(dev)
	})
	if openErr != nil {
		return nil, openErr
	}
	return openDev, nil
}
