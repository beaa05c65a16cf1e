//go:build darwin

package mtl

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// The Objective-C calls the device makes, one typed objc_msgSend function
// per signature. purego's generic objc.Send registers a function on every
// call; these are registered once, when the first device opens, and reused.
var (
	msgID         func(obj objc.ID, sel objc.SEL) objc.ID
	msgPtr        func(obj objc.ID, sel objc.SEL) unsafe.Pointer
	msgU64        func(obj objc.ID, sel objc.SEL) uint64
	msgVoid       func(obj objc.ID, sel objc.SEL)
	msgSize       func(obj objc.ID, sel objc.SEL) mtlSize
	msgBoolU64    func(obj objc.ID, sel objc.SEL, a uint64) bool
	msgIDStr      func(obj objc.ID, sel objc.SEL, s string) objc.ID
	msgIDID       func(obj objc.ID, sel objc.SEL, a objc.ID) objc.ID
	msgIDU64      func(obj objc.ID, sel objc.SEL, a uint64) objc.ID
	msgIDU64U64   func(obj objc.ID, sel objc.SEL, a, b uint64) objc.ID
	msgIDIDErr    func(obj objc.ID, sel objc.SEL, a objc.ID, err *objc.ID) objc.ID
	msgIDIDIDErr  func(obj objc.ID, sel objc.SEL, a, b objc.ID, err *objc.ID) objc.ID
	msgVoidID     func(obj objc.ID, sel objc.SEL, a objc.ID)
	msgVoidU64    func(obj objc.ID, sel objc.SEL, a uint64)
	msgVoidBool   func(obj objc.ID, sel objc.SEL, a bool)
	msgVoidU64U64 func(obj objc.ID, sel objc.SEL, a, b uint64)
	msgVoidIDU64  func(obj objc.ID, sel objc.SEL, a objc.ID, b uint64)
	msgSetBuffer  func(obj objc.ID, sel objc.SEL, buf objc.ID, offset, index uint64)
	msgSetBytes   func(obj objc.ID, sel objc.SEL, p unsafe.Pointer, n, index uint64)
	msgDispatch   func(obj objc.ID, sel objc.SEL, grid, group mtlSize)

	autoreleasePoolPush func() uintptr
	autoreleasePoolPop  func(pool uintptr)

	createSystemDefaultDevice func() objc.ID
)

// mtlSize is MTLSize: three NSUIntegers, passed by value.
type mtlSize struct{ Width, Height, Depth uint64 }

// Selectors, registered once (sel_registerName takes a global lock).
var (
	selAlloc                   = objc.RegisterName("alloc")
	selInit                    = objc.RegisterName("init")
	selRetain                  = objc.RegisterName("retain")
	selRelease                 = objc.RegisterName("release")
	selStringWithUTF8          = objc.RegisterName("stringWithUTF8String:")
	selUTF8String              = objc.RegisterName("UTF8String")
	selLocalizedDescription    = objc.RegisterName("localizedDescription")
	selName                    = objc.RegisterName("name")
	selNewCommandQueue         = objc.RegisterName("newCommandQueue")
	selNewLibrary              = objc.RegisterName("newLibraryWithSource:options:error:")
	selNewFunction             = objc.RegisterName("newFunctionWithName:")
	selNewPipeline             = objc.RegisterName("newComputePipelineStateWithFunction:error:")
	selNewBuffer               = objc.RegisterName("newBufferWithLength:options:")
	selContents                = objc.RegisterName("contents")
	selNewFence                = objc.RegisterName("newFence")
	selNewSharedEvent          = objc.RegisterName("newSharedEvent")
	selSignaledValue           = objc.RegisterName("signaledValue")
	selSetSignaledValue        = objc.RegisterName("setSignaledValue:")
	selMaxThreadsPerGroup      = objc.RegisterName("maxThreadsPerThreadgroup")
	selMaxThreadgroupMemory    = objc.RegisterName("maxThreadgroupMemoryLength")
	selThreadExecutionWidth    = objc.RegisterName("threadExecutionWidth")
	selMaxTotalThreads         = objc.RegisterName("maxTotalThreadsPerThreadgroup")
	selSetLanguageVersion      = objc.RegisterName("setLanguageVersion:")
	selSetFastMathEnabled      = objc.RegisterName("setFastMathEnabled:")
	selCommandBufferUnretained = objc.RegisterName("commandBufferWithUnretainedReferences")
	selComputeEncoderWithType  = objc.RegisterName("computeCommandEncoderWithDispatchType:")
	selSetPipelineState        = objc.RegisterName("setComputePipelineState:")
	selSetBuffer               = objc.RegisterName("setBuffer:offset:atIndex:")
	selSetBytes                = objc.RegisterName("setBytes:length:atIndex:")
	selSetThreadgroupMemory    = objc.RegisterName("setThreadgroupMemoryLength:atIndex:")
	selDispatchThreadgroups    = objc.RegisterName("dispatchThreadgroups:threadsPerThreadgroup:")
	selMemoryBarrierWithScope  = objc.RegisterName("memoryBarrierWithScope:")
	selUpdateFence             = objc.RegisterName("updateFence:")
	selWaitForFence            = objc.RegisterName("waitForFence:")
	selEndEncoding             = objc.RegisterName("endEncoding")
	selEncodeSignalEvent       = objc.RegisterName("encodeSignalEvent:value:")
	selEncodeWaitForEvent      = objc.RegisterName("encodeWaitForEvent:value:")
	selAddCompletedHandler     = objc.RegisterName("addCompletedHandler:")
	selCommit                  = objc.RegisterName("commit")
	selStatus                  = objc.RegisterName("status")
	selError                   = objc.RegisterName("error")
	selSupportsFamily          = objc.RegisterName("supportsFamily:")
)

// Classes, looked up once the frameworks are loaded.
var (
	classNSString          objc.Class
	classMTLCompileOptions objc.Class
)

// Metal constants.
const (
	resourceStorageModeShared       = 0 << 4
	resourceHazardTrackingUntracked = 1 << 8
	dispatchTypeConcurrent          = 1
	barrierScopeBuffers             = 1
	commandBufferStatusError        = 5
	languageVersion3_1              = 3<<16 | 1 // bfloat needs MSL 3.1
)

var (
	bindOnce sync.Once
	bindErr  error
)

// bind loads the frameworks and registers the typed functions, once per
// process.
func bind() error {
	bindOnce.Do(func() { bindErr = bindFrameworks() })
	return bindErr
}

// The frameworks bind loads, and the C functions it takes from them.
const (
	libobjc      = "/usr/lib/libobjc.A.dylib"
	foundation   = "/System/Library/Frameworks/Foundation.framework/Foundation"
	metalFW      = "/System/Library/Frameworks/Metal.framework/Metal"
	iokitFW      = "/System/Library/Frameworks/IOKit.framework/IOKit"
	coreFoundFW  = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	objcMsgSend  = "objc_msgSend"
	dlopenGlobal = purego.RTLD_NOW | purego.RTLD_GLOBAL
)

func bindFrameworks() error {
	libs := map[string]uintptr{}
	for _, name := range []string{libobjc, foundation, metalFW, iokitFW, coreFoundFW} {
		lib, err := purego.Dlopen(name, dlopenGlobal)
		if err != nil {
			return fmt.Errorf("metal: loading %s: %w", name, err)
		}
		libs[name] = lib
	}
	type cfunc struct {
		lib, name string
		fn        any
	}
	fns := []cfunc{
		{libobjc, "objc_autoreleasePoolPush", &autoreleasePoolPush},
		{libobjc, "objc_autoreleasePoolPop", &autoreleasePoolPop},
		{metalFW, "MTLCreateSystemDefaultDevice", &createSystemDefaultDevice},
		{iokitFW, "IOServiceMatching", &ioServiceMatching},
		{iokitFW, "IOServiceGetMatchingService", &ioServiceGetMatchingService},
		{iokitFW, "IORegistryEntryCreateCFProperty", &ioRegistryEntryCreateCFProperty},
		{iokitFW, "IOObjectRelease", &ioObjectRelease},
		{coreFoundFW, "CFStringCreateWithCString", &cfStringCreateWithCString},
		{coreFoundFW, "CFNumberGetValue", &cfNumberGetValue},
		{coreFoundFW, "CFRelease", &cfRelease},
	}
	// Every objc_msgSend signature is a function of its own.
	for _, fn := range []any{
		&msgID, &msgPtr, &msgU64, &msgVoid, &msgSize, &msgBoolU64, &msgIDStr, &msgIDID, &msgIDU64, &msgIDU64U64,
		&msgIDIDErr, &msgIDIDIDErr, &msgVoidID, &msgVoidU64, &msgVoidBool, &msgVoidU64U64,
		&msgVoidIDU64, &msgSetBuffer, &msgSetBytes, &msgDispatch,
	} {
		fns = append(fns, cfunc{libobjc, objcMsgSend, fn})
	}
	for _, f := range fns {
		sym, err := purego.Dlsym(libs[f.lib], f.name)
		if err != nil {
			return fmt.Errorf("metal: %w", err)
		}
		purego.RegisterFunc(f.fn, sym)
	}
	classNSString = objc.GetClass("NSString")
	classMTLCompileOptions = objc.GetClass("MTLCompileOptions")
	if classNSString == 0 || classMTLCompileOptions == 0 {
		return errors.New("metal: the NSString or MTLCompileOptions class is missing")
	}
	return nil
}

// withPool runs fn on a locked OS thread inside an autorelease pool, so that
// the autoreleased objects fn creates are freed when it returns. Pools belong
// to OS threads; the lock keeps the goroutine on one.
func withPool(fn func()) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	pool := autoreleasePoolPush()
	defer autoreleasePoolPop(pool)
	fn()
}

// nsString returns an autoreleased NSString holding s.
func nsString(s string) objc.ID {
	return msgIDStr(objc.ID(classNSString), selStringWithUTF8, s)
}

// goString copies an NSString into Go memory.
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	p := (*byte)(msgPtr(s, selUTF8String))
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// nsError turns an NSError into a Go error; nil if err is nil.
func nsError(err objc.ID) error {
	if err == 0 {
		return nil
	}
	return errors.New(goString(msgID(err, selLocalizedDescription)))
}
