package runtime_test

import (
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Test primitives that exercise what the runtime must order: a multi-output
// primitive, a primitive with scratch and two dispatches, an in-place update
// that donates its input (with and without scratch), and a reader standing
// in for paged attention. Their CPU kernels are plain loops; the runtime tests
// check ordering, not arithmetic.

func f32spec(shape ...int) graph.Spec { return graph.Spec{DType: graph.Float32, Shape: shape} }

func need(in []graph.Spec, n int, check func() error) error {
	if len(in) != n {
		return fmt.Errorf("needs %d inputs, got %d", n, len(in))
	}
	for _, s := range in {
		if s.DType != graph.Float32 {
			return fmt.Errorf("needs float32, got %s", s.DType)
		}
	}
	return check()
}

// tMatMul is a [M,K]·[K,N] product.
type tMatMul struct{}

type dims3 struct{ M, K, N uint32 }

func (tMatMul) Name() string { return "test_matmul" }
func (tMatMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	err := need(in, 2, func() error {
		if len(in[0].Shape) != 2 || len(in[1].Shape) != 2 || in[0].Shape[1] != in[1].Shape[0] {
			return fmt.Errorf("shapes %v and %v", in[0].Shape, in[1].Shape)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []graph.Spec{f32spec(in[0].Shape[0], in[1].Shape[1])}, nil
}
func (tMatMul) Lower(l *primitives.Lowering) error {
	a, b := l.Inputs[0].Shape, l.Inputs[1].Shape
	l.Dispatch("test_matmul", one3, one3, &dims3{uint32(a[0]), uint32(a[1]), uint32(b[1])}, primitives.In(0), primitives.In(1), primitives.Out(0))
	return nil
}

// tSplit has two outputs: a+b and a−b.
type tSplit struct{}

func (tSplit) Name() string    { return "test_split" }
func (tSplit) NumOutputs() int { return 2 }
func (tSplit) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	err := need(in, 2, func() error {
		if graph.NumElements(in[0].Shape) != graph.NumElements(in[1].Shape) {
			return fmt.Errorf("sizes differ")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []graph.Spec{in[0], in[0]}, nil
}
func (tSplit) Lower(l *primitives.Lowering) error {
	l.Dispatch("test_split", one3, one3, nil, primitives.In(0), primitives.In(1), primitives.Out(0), primitives.Out(1))
	return nil
}

// tScan computes row prefix sums into scratch, then out = scratch − a/2: two
// dispatches ordered through a scratch buffer.
type tScan struct{}

type cols struct{ Cols uint32 }

func (tScan) Name() string { return "test_scan" }
func (tScan) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	err := need(in, 1, func() error {
		if len(in[0].Shape) != 2 {
			return fmt.Errorf("needs rank 2")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []graph.Spec{in[0]}, nil
}
func (tScan) Lower(l *primitives.Lowering) error {
	s := l.NewScratch(l.Inputs[0].Bytes())
	p := &cols{uint32(l.Inputs[0].Shape[1])}
	l.Dispatch("test_scan1", one3, one3, p, primitives.In(0), s)
	l.Dispatch("test_scan2", one3, one3, p, primitives.In(0), s, primitives.Out(0))
	return nil
}

// tScatter writes rows into dst in place at int32 indices (negative skips),
// donating dst. With scratch set it stages the rows through a scratch buffer
// first, which is what the exempt-alias mutation needs.
type tScatter struct{ scratch bool }

func (tScatter) Name() string { return "test_scatter" }
func (tScatter) Aliases() []graph.Alias {
	return []graph.Alias{{Output: 0, Input: 0, Donate: true}}
}
func (tScatter) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 || in[0].DType != graph.Float32 || in[1].DType != graph.Int32 || in[2].DType != graph.Float32 ||
		len(in[0].Shape) != 2 || len(in[2].Shape) != 2 || in[1].Size() != in[2].Shape[0] || in[0].Shape[1] != in[2].Shape[1] {
		return nil, fmt.Errorf("bad inputs %v", in)
	}
	return []graph.Spec{in[0]}, nil
}
func (t tScatter) Lower(l *primitives.Lowering) error {
	p := &cols{uint32(l.Inputs[0].Shape[1])}
	rows := primitives.In(2)
	if t.scratch {
		s := l.NewScratch(l.Inputs[2].Bytes())
		l.Dispatch(primitives.CopyKernel, one3, one3, &primitives.CopyParams{Bytes: uint32(l.Inputs[2].Bytes())}, rows, s)
		rows = s
	}
	l.Dispatch("test_scatter", one3, one3, p, primitives.Out(0), primitives.In(1), rows)
	return nil
}

// tReadSum sums each column of a cache into a vector: a read-only reader of
// the cache, standing in for attention.
type tReadSum struct{}

func (tReadSum) Name() string { return "test_readsum" }
func (tReadSum) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	err := need(in, 1, func() error {
		if len(in[0].Shape) != 2 {
			return fmt.Errorf("needs rank 2")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []graph.Spec{f32spec(in[0].Shape[1])}, nil
}
func (tReadSum) Lower(l *primitives.Lowering) error {
	l.Dispatch("test_readsum", one3, one3, &cols{uint32(l.Inputs[0].Shape[1])}, primitives.In(0), primitives.Out(0))
	return nil
}

func init() {
	r, w, rw := primitives.R, primitives.W, primitives.RW
	err := primitives.Register(
		primitives.KernelSpec{Name: "test_matmul", Args: []primitives.ArgSpec{r("a"), r("b"), w("out")}, Params: (*dims3)(nil)},
		primitives.KernelSpec{Name: "test_split", Args: []primitives.ArgSpec{r("a"), r("b"), w("sum"), w("diff")}},
		primitives.KernelSpec{Name: "test_scan1", Args: []primitives.ArgSpec{r("a"), w("tmp")}, Params: (*cols)(nil)},
		primitives.KernelSpec{Name: "test_scan2", Args: []primitives.ArgSpec{r("a"), r("tmp"), w("out")}, Params: (*cols)(nil)},
		primitives.KernelSpec{Name: "test_scatter", Args: []primitives.ArgSpec{rw("dst"), r("idx"), r("rows")}, Params: (*cols)(nil)},
		primitives.KernelSpec{Name: "test_readsum", Args: []primitives.ArgSpec{r("cache"), w("out")}, Params: (*cols)(nil)},
	)
	if err != nil {
		panic(err)
	}
	reg := func(name string, k cpu.Kernel) {
		if err := cpu.Register(name, k); err != nil {
			panic(err)
		}
	}
	reg("test_matmul", func(c *cpu.Call) error {
		p := c.Params.(*dims3)
		a, b, out := c.F32(0), c.F32(1), c.F32(2)
		for i := 0; i < int(p.M); i++ {
			for j := 0; j < int(p.N); j++ {
				var s float32
				for k := 0; k < int(p.K); k++ {
					s += a[i*int(p.K)+k] * b[k*int(p.N)+j]
				}
				out[i*int(p.N)+j] = s
			}
		}
		return nil
	})
	reg("test_split", func(c *cpu.Call) error {
		a, b, s, d := c.F32(0), c.F32(1), c.F32(2), c.F32(3)
		for i := range a {
			s[i], d[i] = a[i]+b[i], a[i]-b[i]
		}
		return nil
	})
	reg("test_scan1", func(c *cpu.Call) error {
		n := int(c.Params.(*cols).Cols)
		a, t := c.F32(0), c.F32(1)
		for r := 0; r < len(a)/n; r++ {
			var s float32
			for j := 0; j < n; j++ {
				s += a[r*n+j]
				t[r*n+j] = s
			}
		}
		return nil
	})
	reg("test_scan2", func(c *cpu.Call) error {
		a, t, out := c.F32(0), c.F32(1), c.F32(2)
		for i := range a {
			out[i] = t[i] - a[i]/2
		}
		return nil
	})
	reg("test_scatter", func(c *cpu.Call) error {
		n := int(c.Params.(*cols).Cols)
		dst, idx, rows := c.F32(0), c.I32(1), c.F32(2)
		for i, r := range idx {
			if r < 0 {
				continue
			}
			if int(r) >= len(dst)/n {
				return fmt.Errorf("index %d at %d out of range", r, i)
			}
			copy(dst[int(r)*n:int(r+1)*n], rows[i*n:(i+1)*n])
		}
		return nil
	})
	reg("test_readsum", func(c *cpu.Call) error {
		n := int(c.Params.(*cols).Cols)
		cache, out := c.F32(0), c.F32(1)
		for j := 0; j < n; j++ {
			var s float32
			for r := 0; r < len(cache)/n; r++ {
				s += cache[r*n+j]
			}
			out[j] = s
		}
		return nil
	})
}
