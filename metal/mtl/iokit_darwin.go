//go:build darwin

package mtl

// The GPU core count is not in Metal's API; the IORegistry's AGXAccelerator
// service reports it as "gpu-core-count".
var (
	ioServiceMatching               func(name string) uintptr
	ioServiceGetMatchingService     func(mainPort uint32, matching uintptr) uint32
	ioRegistryEntryCreateCFProperty func(entry uint32, key uintptr, allocator uintptr, options uint32) uintptr
	ioObjectRelease                 func(obj uint32) int32
	cfStringCreateWithCString       func(allocator uintptr, s string, encoding uint32) uintptr
	cfNumberGetValue                func(num uintptr, typ int, out *int32) bool
	cfRelease                       func(obj uintptr)
)

const (
	cfStringEncodingUTF8 = 0x08000100
	cfNumberSInt32Type   = 3
)

// gpuCoreCount returns the GPU's core count from the IORegistry, or 0 when
// the system does not report it.
func gpuCoreCount() int {
	// IOServiceGetMatchingService consumes the matching dictionary.
	service := ioServiceGetMatchingService(0, ioServiceMatching("AGXAccelerator"))
	if service == 0 {
		return 0
	}
	defer ioObjectRelease(service)
	key := cfStringCreateWithCString(0, "gpu-core-count", cfStringEncodingUTF8)
	if key == 0 {
		return 0
	}
	defer cfRelease(key)
	num := ioRegistryEntryCreateCFProperty(service, key, 0, 0)
	if num == 0 {
		return 0
	}
	defer cfRelease(num)
	var n int32
	if !cfNumberGetValue(num, cfNumberSInt32Type, &n) || n <= 0 {
		return 0
	}
	return int(n)
}
