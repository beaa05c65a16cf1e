package primitives

// CopyParams are the params of the copy kernel.
type CopyParams struct {
	Bytes uint32
}

// CopyThreads is the number of threads per group of the copy kernel; each
// thread copies 16 bytes.
const CopyThreads = 256

// CopyDispatch copies nbytes from src to dst. The runtime uses it when an
// in-place update cannot take its input's buffer and must update a copy.
func CopyDispatch(src, dst Ref, nbytes int64) Dispatch {
	return bind(CopyKernel, Dim3{Groups(int(nbytes+15)/16, CopyThreads), 1, 1}, Dim3{CopyThreads, 1, 1},
		&CopyParams{Bytes: uint32(nbytes)}, []Ref{src, dst})
}

// CopyKernel is the copy kernel's name.
const CopyKernel = "copy_bytes"

func init() {
	register(KernelSpec{Name: CopyKernel, Args: []ArgSpec{R("src"), W("dst")}, Params: (*CopyParams)(nil)})
}
