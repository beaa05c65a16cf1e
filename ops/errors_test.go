package ops_test

import (
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// TestErrors checks that every op rejects bad arguments with an error
// state, never a panic, whose message names the op, what is wrong and where
// the op was called.
func TestErrors(t *testing.T) {
	f32 := func(shape ...int) *graph.Array {
		return graph.FromBytes(graph.Float32, make([]byte, 4*graph.NumElements(shape)), shape...)
	}
	of := func(dt graph.DType, shape ...int) *graph.Array {
		return graph.FromBytes(dt, make([]byte, dt.Size()*graph.NumElements(shape)), shape...)
	}
	i32 := func(v ...int32) *graph.Array { return graph.FromInt32s(v) }
	broken := ops.Add(f32(2), f32(3)) // an error state to inherit
	donated := func() *graph.Array {
		a := f32(4, 2)
		ops.ScatterRows(a, i32(0), f32(1, 2))
		return a
	}
	cases := []struct {
		name string
		got  *graph.Array
		want []string
	}{
		// Elementwise.
		{"unary int", ops.Exp(of(graph.Int32, 3)), []string{"exp", "dtype int32 is unsupported", "int32[3]"}},
		{"neg bool", ops.Neg(of(graph.Bool, 3)), []string{"neg", "dtype bool is unsupported"}},
		{"unary nil", ops.Sqrt(nil), []string{"sqrt", "input 0 is nil"}},
		{"unary rank", ops.Exp(f32(1, 1, 1, 1, 1, 1, 1, 1, 2)), []string{"exp", "rank 9 is unsupported (the limit is 8)"}},
		{"binary rank", ops.Add(f32(1, 1, 1, 1, 1, 1, 1, 1, 2), f32(2)), []string{"add", "rank 9 is unsupported"}},
		{"where rank", ops.Where(of(graph.Bool, 1, 1, 1, 1, 1, 1, 1, 1, 2), f32(2), f32(2)), []string{"where", "rank 9 is unsupported"}},
		{"cast rank", ops.Cast(f32(1, 1, 1, 1, 1, 1, 1, 1, 2), graph.Int32), []string{"cast", "rank 9 is unsupported"}},
		{"unary inherits", ops.SiLU(broken), []string{"add", "cannot be broadcast", "float32[2]", "float32[3]"}},
		{"unary donated", ops.Tanh(donated()), []string{"tanh", "input 0 (float32[4 2]) was donated to scatter_rows", "errors_test.go:"}},
		{"binary shapes", ops.Add(f32(2, 3), f32(4)), []string{"add", "cannot be broadcast", "float32[2 3]", "float32[4]"}},
		{"binary dtypes", ops.Mul(f32(2), of(graph.Float16, 2)), []string{"mul", "dtypes differ: float32 and float16"}},
		{"binary bool", ops.Sub(of(graph.Bool, 2), of(graph.Bool, 2)), []string{"sub", "dtype bool is unsupported"}},
		{"binary nil", ops.Div(f32(2), nil), []string{"div", "input 1 is nil"}},
		{"where cond", ops.Where(f32(2), f32(2), f32(2)), []string{"where", "cond must be bool, got float32"}},
		{"where dtypes", ops.Where(of(graph.Bool, 2), f32(2), of(graph.Int32, 2)), []string{"where", "dtypes of a and b differ: float32 and int32"}},
		{"where shapes", ops.Where(of(graph.Bool, 3), f32(2), f32(2)), []string{"where", "cannot be broadcast", "bool[3]"}},
		{"where nil", ops.Where(nil, f32(2), f32(2)), []string{"where", "input 0 is nil"}},
		{"cast dtype", ops.Cast(f32(2), graph.DType(99)), []string{"cast", "target dtype DType(99) is unsupported"}},
		{"cast nil", ops.Cast(nil, graph.Int32), []string{"cast", "input 0 is nil"}},
		{"abs bool", ops.Abs(of(graph.Bool, 3)), []string{"abs", "dtype bool is unsupported"}},
		{"sin int", ops.Sin(of(graph.Int32, 3)), []string{"sin", "dtype int32 is unsupported"}},
		{"floor nil", ops.Floor(nil), []string{"floor", "input 0 is nil"}},
		{"power dtypes", ops.Power(f32(2), of(graph.Int32, 2)), []string{"power", "dtypes differ: float32 and int32"}},
		{"power shapes", ops.Power(f32(2), f32(3)), []string{"power", "cannot be broadcast"}},
		{"square bool", ops.Square(of(graph.Bool, 2)), []string{"mul", "dtype bool is unsupported"}},
		{"relu bool", ops.ReLU(of(graph.Bool, 2)), []string{"relu", "input 0 has dtype bool, which is unsupported"}},
		{"relu nil", ops.ReLU(nil), []string{"relu", "input 0 is nil"}},
		{"clip no bounds", ops.Clip(f32(2), nil, nil), []string{"clip", "lo and hi are both nil"}},
		{"clip dtype", ops.Clip(f32(2), nil, of(graph.Int32)), []string{"clip", "hi has dtype int32, a float32"}},
		{"clip bool", ops.Clip(of(graph.Bool, 2), of(graph.Bool), nil), []string{"clip", "input 0 has dtype bool, which is unsupported"}},
		{"clip shapes", ops.Clip(f32(2), f32(3), nil), []string{"maximum", "cannot be broadcast"}},
		{"clip nil", ops.Clip(nil, f32(), nil), []string{"clip", "input 0 is nil"}},
		{"logical_and dtype", ops.LogicalAnd(of(graph.Bool, 2), f32(2)), []string{"logical_and", "input 1 has dtype float32, which is unsupported"}},
		{"logical_or shapes", ops.LogicalOr(of(graph.Bool, 2), of(graph.Bool, 3)), []string{"where", "cannot be broadcast"}},
		{"logical_not nil", ops.LogicalNot(nil), []string{"logical_not", "input 0 is nil"}},
		// Reductions.
		{"sum axis", ops.Sum(f32(2, 3), 2, false), []string{"sum", "axis 2 is out of range for rank 2", "float32[2 3]"}},
		{"max negative axis", ops.Max(f32(2, 3), -3, true), []string{"max", "axis -3 is out of range for rank 2"}},
		{"sum scalar", ops.Sum(f32(), 0, false), []string{"sum", "axis 0 is out of range for rank 0"}},
		{"mean int", ops.Mean(of(graph.Int32, 3), 0, false), []string{"mean", "dtype int32 is unsupported"}},
		{"sum bool", ops.Sum(of(graph.Bool, 3), 0, false), []string{"sum", "dtype bool is unsupported"}},
		{"max empty", ops.Max(f32(2, 0), 1, false), []string{"max", "axis 1 is empty", "float32[2 0]"}},
		{"argmax empty", ops.Argmax(f32(0), 0, false), []string{"argmax", "axis 0 is empty"}},
		{"argmax nil", ops.Argmax(nil, 0, false), []string{"argmax", "input 0 is nil"}},
		{"min empty", ops.Min(f32(2, 0), 1, false), []string{"min", "axis 1 is empty", "float32[2 0]"}},
		{"argmin empty", ops.Argmin(f32(0), -1, false), []string{"argmin", "axis -1 is empty"}},
		{"prod bool", ops.Prod(of(graph.Bool, 3), 0, false), []string{"prod", "dtype bool is unsupported"}},
		{"logsumexp int", ops.LogSumExp(of(graph.Int32, 3), 0, false), []string{"logsumexp", "dtype int32 is unsupported"}},
		{"logsumexp axis", ops.LogSumExp(f32(3), 1, false), []string{"logsumexp", "axis 1 is out of range for rank 1"}},
		{"sum axes repeated", ops.SumAxes(f32(2, 3), []int{1, -1}, false), []string{"sum", "axis -1 is given twice in [1 -1]", "float32[2 3]"}},
		{"max axes range", ops.MaxAxes(f32(2, 3), []int{0, 2}, false), []string{"max", "axis 2 is out of range for rank 2", "float32[2 3]"}},
		{"min axes empty", ops.MinAxes(f32(2, 0, 3), []int{0, 1}, true), []string{"min", "is empty"}},
		{"mean axes int", ops.MeanAxes(of(graph.Int32, 2, 3), nil, false), []string{"mean", "dtype int32 is unsupported"}},
		{"prod axes nil", ops.ProdAxes(nil, nil, false), []string{"prod", "input 0 is nil"}},
		{"cumsum bool", ops.Cumsum(of(graph.Bool, 3), 0), []string{"cumsum", "dtype bool is unsupported"}},
		{"cumsum axis", ops.Cumsum(f32(3), -2), []string{"cumsum", "axis -2 is out of range for rank 1"}},
		{"sort scalar", ops.Sort(f32(), 0, false), []string{"sort", "axis 0 is out of range for rank 0"}},
		{"argsort bool", ops.Argsort(of(graph.Bool, 3), 0, true), []string{"sort", "dtype bool is unsupported"}},
		{"topk k", first(ops.TopK(f32(2, 5), 6, 1)), []string{"topk", "k = 6 is not within [0, 5]", "float32[2 5]"}},
		{"topk negative", second(ops.TopK(f32(5), -1, 0)), []string{"topk", "k = -1 is not within [0, 5]"}},
		{"topk axis", first(ops.TopK(f32(5), 1, 1)), []string{"topk", "axis 1 is out of range for rank 1"}},
		{"topk nil", second(ops.TopK(nil, 1, 0)), []string{"topk", "input 0 is nil"}},
		{"logsumexp axes inherits", ops.LogSumExpAxes(broken, []int{0}, false), []string{"add", "cannot be broadcast"}},
		// Shape ops.
		{"reshape size", ops.Reshape(f32(2, 3), 5), []string{"reshape", "shape [5] has 5 elements, the input 6", "float32[2 3]"}},
		{"reshape two -1", ops.Reshape(f32(2, 3), -1, -1), []string{"reshape", "more than one -1"}},
		{"reshape negative", ops.Reshape(f32(2, 3), -2, -3), []string{"reshape", "negative dimension -2"}},
		{"reshape infer", ops.Reshape(f32(0, 3), 0, -1), []string{"reshape", "cannot infer the -1 of shape [0 -1] for 0 elements"}},
		{"reshape indivisible", ops.Reshape(f32(2, 3), 4, -1), []string{"reshape", "cannot infer the -1 of shape [4 -1] for 6 elements"}},
		{"reshape rank", ops.Reshape(f32(6), 1, 1, 1, 1, 1, 1, 1, 1, 6), []string{"reshape", "rank 9 is unsupported (the limit is 8)", "float32[6]"}},
		{"reshape nil", ops.Reshape(nil, 3), []string{"reshape", "input 0 is nil"}},
		{"reshape donated", ops.Reshape(donated(), 8), []string{"reshape", "donated to scatter_rows"}},
		{"transpose length", ops.Transpose(f32(2, 3), 0), []string{"transpose", "permutation [0] has 1 axes, the input 2"}},
		{"transpose repeat", ops.Transpose(f32(2, 3), 1, 1), []string{"transpose", "[1 1] is not a permutation of the axes 0..1"}},
		{"transpose range", ops.Transpose(f32(2, 3), 0, 2), []string{"transpose", "[0 2] is not a permutation"}},
		{"transpose negative", ops.Transpose(f32(2, 3), -1, 0), []string{"transpose", "[-1 0] is not a permutation"}},
		{"transpose rank", ops.Transpose(f32(1, 1, 1, 1, 1, 1, 1, 1, 1)), []string{"transpose", "rank 9 is unsupported"}},
		{"transpose nil", ops.Transpose(nil), []string{"transpose", "input 0 is nil"}},
		{"slice count", ops.Slice(f32(2, 3), []int{0}, []int{1, 1}), []string{"slice", "one entry per axis of the rank-2 input"}},
		{"slice past end", ops.Slice(f32(2, 3), []int{0, 1}, []int{2, 4}), []string{"slice", "axis 1: range [1, 4) is not within [0, 3)", "float32[2 3]"}},
		{"slice reversed", ops.Slice(f32(2, 3), []int{2, 0}, []int{1, 3}), []string{"slice", "axis 0: range [2, 1)"}},
		{"slice negative", ops.Slice(f32(2, 3), []int{-1, 0}, []int{2, 3}), []string{"slice", "axis 0: range [-1, 2)"}},
		{"slice nil", ops.Slice(nil, nil, nil), []string{"slice", "input 0 is nil"}},
		{"concatenate none", ops.Concatenate(0), []string{"concatenate", "needs at least 1 input"}},
		{"concatenate dtypes", ops.Concatenate(0, f32(2), of(graph.Int32, 2)), []string{"concatenate", "input 1 has dtype int32, input 0 float32"}},
		{"concatenate ranks", ops.Concatenate(0, f32(2), f32(2, 1)), []string{"concatenate", "input 1 has rank 2, input 0 rank 1"}},
		{"concatenate shapes", ops.Concatenate(1, f32(2, 3), f32(3, 3)), []string{"concatenate", "input 1 has shape [3 3], input 0 [2 3]: they differ on axis 0"}},
		{"concatenate axis", ops.Concatenate(2, f32(2, 3), f32(2, 3)), []string{"concatenate", "axis 2 is out of range for rank 2"}},
		{"concatenate scalar", ops.Concatenate(0, f32(), f32()), []string{"concatenate", "axis 0 is out of range for rank 0"}},
		{"concatenate nil", ops.Concatenate(0, f32(2), nil), []string{"concatenate", "input 1 is nil"}},
		{"random key dtype", ops.RandomBits(graph.FromInt32s([]int32{1, 2}), 3), []string{"random", "the key must be uint32[2], got int32[2]"}},
		{"random key shape", ops.RandomUniform(graph.FromUint32s([]uint32{1}), 0, 1, graph.Float32, 3), []string{"random", "the key must be uint32[2], got uint32[1]"}},
		{"random dtype", ops.RandomNormal(ops.RandomKey(1), 0, 1, graph.Int32, 3), []string{"random", "normal draws of dtype int32 are unsupported"}},
		{"random bounds", ops.RandomUniform(ops.RandomKey(1), 1, 1, graph.Float32, 3), []string{"random", "needs lo < hi, got 1 and 1"}},
		{"random std", ops.RandomNormal(ops.RandomKey(1), 0, float32(math.Inf(1)), graph.Float32, 3), []string{"random", "scale +Inf and shift 0 must be finite"}},
		{"random shape", ops.RandomBits(ops.RandomKey(1), 2, -1), []string{"random", "shape [2 -1] has negative dimension -1"}},
		{"random split", ops.RandomSplit(ops.RandomKey(1), 0)[0], []string{"random", "RandomSplit needs n ≥ 1, got 0"}},
		{"random nil key", ops.RandomBits(nil, 2), []string{"random", "input 0 is nil"}},
		{"arange step", ops.Arange(0, 3, 0, graph.Float32), []string{"arange", "step is 0"}},
		{"arange NaN", ops.Arange(0, math.NaN(), 1, graph.Float32), []string{"arange", "must be finite"}},
		{"arange int fraction", ops.Arange(0, 3, 0.5, graph.Int32), []string{"arange", "start 0 and step 0.5 must be integers for dtype int32"}},
		{"arange bool", ops.Arange(0, 3, 1, graph.Bool), []string{"arange", "dtype bool is unsupported"}},
		{"arange size", ops.Arange(0, 1e12, 1, graph.Float32), []string{"arange", "elements are unsupported"}},
		{"broadcast_to shapes", ops.BroadcastTo(f32(3), 4), []string{"broadcast_to", "shape [3] does not broadcast to [4]", "float32[3]"}},
		{"broadcast_to fewer axes", ops.BroadcastTo(f32(2, 3), 3), []string{"broadcast_to", "shape [2 3] does not broadcast to [3]"}},
		{"broadcast_to negative", ops.BroadcastTo(f32(1), -2), []string{"broadcast_to", "negative dimension -2"}},
		{"broadcast_to rank", ops.BroadcastTo(f32(1), 1, 1, 1, 1, 1, 1, 1, 1, 2), []string{"broadcast_to", "rank 9 is unsupported"}},
		{"stack none", ops.Stack(0), []string{"stack", "needs at least 1 input"}},
		{"stack shapes", ops.Stack(0, f32(2), f32(3)), []string{"stack", "input 1 is float32[3], input 0 float32[2]"}},
		{"stack dtypes", ops.Stack(0, f32(2), of(graph.Int32, 2)), []string{"stack", "input 1 is int32[2]"}},
		{"stack axis", ops.Stack(2, f32(2), f32(2)), []string{"stack", "axis 2 is out of range for rank 2"}},
		{"stack nil", ops.Stack(0, f32(2), nil), []string{"stack", "input 1 is nil"}},
		{"split parts", ops.Split(f32(6), 0, 0)[0], []string{"split", "parts 0 must be ≥ 1"}},
		{"split uneven", ops.Split(f32(2, 7), 2, 1)[1], []string{"split", "axis 1 of length 7 does not split into 2 equal parts", "float32[2 7]"}},
		{"split axis", ops.Split(f32(6), 2, -2)[0], []string{"split", "axis -2 is out of range for rank 1"}},
		{"split at order", ops.SplitAt(f32(6), []int{4, 2}, 0)[2], []string{"split", "indices [4 2] must ascend within [0, 6]"}},
		{"split at range", ops.SplitAt(f32(6), []int{7}, 0)[0], []string{"split", "must ascend within [0, 6]"}},
		{"split nil", ops.Split(nil, 2, 0)[1], []string{"split", "input 0 is nil"}},
		{"pad negative", ops.Pad(f32(2, 3), []int{0, -1}, []int{0, 0}, 0), []string{"pad", "axis 1: widths (-1, 0) must be ≥ 0", "float32[2 3]"}},
		{"pad count", ops.Pad(f32(2, 3), []int{1}, []int{1}, 0), []string{"pad", "one pair per axis of the rank-2 input"}},
		{"pad nil", ops.Pad(nil, nil, nil, 0), []string{"pad", "input 0 is nil"}},
		{"slice_strided step", ops.SliceStrided(f32(4), []int{0}, []int{4}, []int{0}), []string{"slice_strided", "axis 0: step 0", "float32[4]"}},
		{"slice_strided count", ops.SliceStrided(f32(4, 2), []int{0}, []int{4}, []int{1}), []string{"slice_strided", "one entry per axis of the rank-2 input"}},
		{"slice_strided nil", ops.SliceStrided(nil, nil, nil, nil), []string{"slice_strided", "input 0 is nil"}},
		{"tril rank", ops.Tril(f32(3), 0), []string{"tril", "input float32[3] must have at least 2 dimensions"}},
		{"triu nil", ops.Triu(nil, 0), []string{"triu", "input 0 is nil"}},
		{"causal_mask dtype", ops.CausalMask(2, 2, graph.Int32), []string{"causal_mask", "dtype int32 is unsupported"}},
		{"causal_mask negative", ops.CausalMask(-1, 2, graph.Float32), []string{"causal_mask", "queries -1 and keys 2 must be in [0, 2^30]"}},
		// Gather and scatter.
		{"gather float indices", ops.GatherRows(f32(4, 2), f32(3)), []string{"gather_rows", "indices must be int32 or int64, got float32"}},
		{"gather scalar table", ops.GatherRows(f32(), i32(0)), []string{"gather_rows", "table must have at least 1 dimension"}},
		{"gather range", ops.GatherRows(f32(4, 2), i32(1, 4)), []string{"gather_rows", "indices[1] = 4 is out of range [0, 4)", "float32[4 2]", "int32[2]"}},
		{"gather negative", ops.GatherRows(f32(4, 2), i32(-1)), []string{"gather_rows", "indices[0] = -1 is out of range [0, 4)"}},
		{"gather nil", ops.GatherRows(nil, i32(0)), []string{"gather_rows", "input 0 is nil"}},
		{"scatter rows dtype", ops.ScatterRows(f32(4, 2), i32(0), of(graph.Float16, 1, 2)), []string{"scatter_rows", "rows have dtype float16, dst float32"}},
		{"scatter rows shape", ops.ScatterRows(f32(4, 2), i32(0), f32(1, 3)), []string{"scatter_rows", "rows have shape [1 3], want [1 2]"}},
		{"scatter rows count", ops.ScatterRows(f32(4, 2), i32(0, 1), f32(1, 2)), []string{"scatter_rows", "rows have shape [1 2], want [2 2]"}},
		{"scatter indices rank", ops.ScatterRows(f32(4, 2), graph.FromInt32s([]int32{0}, 1, 1), f32(1, 2)), []string{"scatter_rows", "indices must have 1 dimension, got shape [1 1]"}},
		{"scatter indices dtype", ops.ScatterRows(f32(4, 2), of(graph.Uint32, 1), f32(1, 2)), []string{"scatter_rows", "indices must be int32 or int64, got uint32"}},
		{"scatter scalar dst", ops.ScatterRows(f32(), i32(0), f32(1)), []string{"scatter_rows", "dst must have at least 1 dimension"}},
		{"scatter range", ops.ScatterRows(f32(4, 2), i32(-1, 4), f32(2, 2)), []string{"scatter_rows", "indices[1] = 4 is out of range [0, 4)"}},
		{"scatter donated", ops.ScatterRows(donated(), i32(0), f32(1, 2)), []string{"scatter_rows", "input 0 (float32[4 2]) was donated to scatter_rows"}},
		{"scatter nil rows", ops.ScatterRows(f32(4, 2), i32(0), nil), []string{"scatter_rows", "input 2 is nil"}},
		{"scatter_add range", ops.ScatterAddRows(f32(4, 2), i32(-1, 4), f32(2, 2)), []string{"scatter_add_rows", "indices[1] = 4 is out of range [0, 4)"}},
		{"scatter_add bool", ops.ScatterAddRows(of(graph.Bool, 4, 2), i32(0), of(graph.Bool, 1, 2)), []string{"scatter_add_rows", "dst dtype bool is unsupported"}},
		{"scatter_add shape", ops.ScatterAddRows(f32(4, 2), i32(0, 1), f32(1, 2)), []string{"scatter_add_rows", "rows have shape [1 2], want [2 2]"}},
		{"scatter_add donated", ops.ScatterAddRows(donated(), i32(0), f32(1, 2)), []string{"scatter_add_rows", "was donated to scatter_rows"}},
		{"take_along_axis dtype", ops.TakeAlongAxis(f32(3, 4), f32(3, 4), 1), []string{"take_along_axis", "indices must be int32 or int64, got float32"}},
		{"take_along_axis rank", ops.TakeAlongAxis(f32(3, 4), i32(0), 1), []string{"take_along_axis", "indices have rank 1, a rank 2"}},
		{"take_along_axis shape", ops.TakeAlongAxis(f32(3, 4), of(graph.Int32, 2, 4), 1), []string{"take_along_axis", "indices have shape [2 4], a [3 4]: they may differ only on axis 1"}},
		{"take_along_axis empty", ops.TakeAlongAxis(f32(3, 0), of(graph.Int32, 3, 1), 1), []string{"take_along_axis", "axis 1 of a is empty"}},
		{"take_along_axis axis", ops.TakeAlongAxis(f32(3), i32(0), 1), []string{"take_along_axis", "axis 1 is out of range for rank 1"}},
		{"take_along_axis nil", ops.TakeAlongAxis(nil, i32(0), 0), []string{"take_along_axis", "input 0 is nil"}},
		// Normalisations and RoPE.
		{"softmax int", ops.Softmax(of(graph.Int64, 3), 0), []string{"softmax", "dtype int64 is unsupported"}},
		{"softmax axis", ops.Softmax(f32(3), 1), []string{"softmax", "axis 1 is out of range for rank 1"}},
		{"softmax nil", ops.Softmax(nil, 0), []string{"softmax", "input 0 is nil"}},
		{"rms_norm weight shape", ops.RMSNorm(f32(2, 8), f32(4), 1e-6), []string{"rms_norm", "weight has shape [4], want [8]", "float32[2 8]"}},
		{"rms_norm weight dtype", ops.RMSNorm(f32(2, 8), of(graph.BFloat16, 8), 1e-6), []string{"rms_norm", "weight has dtype bfloat16, x float32"}},
		{"rms_norm int", ops.RMSNorm(of(graph.Int32, 2, 8), of(graph.Int32, 8), 1e-6), []string{"rms_norm", "dtype int32 is unsupported"}},
		{"rms_norm scalar", ops.RMSNorm(f32(), f32(1), 1e-6), []string{"rms_norm", "x must have at least 1 dimension"}},
		{"rms_norm eps", ops.RMSNorm(f32(2, 8), f32(8), -1), []string{"rms_norm", "eps -1 must be finite and ≥ 0"}},
		{"rms_norm eps NaN", ops.RMSNorm(f32(2, 8), f32(8), float32(math.NaN())), []string{"rms_norm", "eps NaN must be finite"}},
		{"layer_norm weight shape", ops.LayerNorm(f32(2, 8), f32(4), nil, 1e-5), []string{"layer_norm", "weight has shape [4], want [8]", "float32[2 8]"}},
		{"layer_norm bias dtype", ops.LayerNorm(f32(2, 8), nil, of(graph.Float16, 8), 1e-5), []string{"layer_norm", "bias has dtype float16, x float32"}},
		{"layer_norm int", ops.LayerNorm(of(graph.Int32, 2, 8), nil, nil, 1e-5), []string{"layer_norm", "dtype int32 is unsupported"}},
		{"layer_norm scalar", ops.LayerNorm(f32(), nil, nil, 1e-5), []string{"layer_norm", "x must have at least 1 dimension"}},
		{"layer_norm eps", ops.LayerNorm(f32(2, 8), nil, nil, -1), []string{"layer_norm", "eps -1 must be finite and ≥ 0"}},
		{"layer_norm nil", ops.LayerNorm(nil, nil, nil, 1e-5), []string{"layer_norm", "input 0 is nil"}},
		{"rms_norm nil", ops.RMSNorm(f32(2, 8), nil, 1e-6), []string{"rms_norm", "input 1 is nil"}},
		{"add_rms_norm residual", first(ops.AddRMSNorm(f32(2, 8), f32(1, 8), f32(8), 1e-6)), []string{"add_rms_norm", "residual float32[1 8] differs from x float32[2 8]"}},
		{"add_rms_norm residual dtype", first(ops.AddRMSNorm(f32(2, 8), of(graph.Float16, 2, 8), f32(8), 1e-6)), []string{"add_rms_norm", "residual float16[2 8] differs from x"}},
		{"add_rms_norm weight", second(ops.AddRMSNorm(f32(2, 8), f32(2, 8), f32(4), 1e-6)), []string{"add_rms_norm", "weight has shape [4], want [8]"}},
		{"add_rms_norm int", first(ops.AddRMSNorm(of(graph.Int32, 8), of(graph.Int32, 8), of(graph.Int32, 8), 1e-6)), []string{"add_rms_norm", "dtype int32 is unsupported"}},
		{"add_rms_norm eps", second(ops.AddRMSNorm(f32(2, 8), f32(2, 8), f32(8), float32(math.Inf(1)))), []string{"add_rms_norm", "eps +Inf must be finite"}},
		{"add_rms_norm nil", first(ops.AddRMSNorm(f32(2, 8), nil, f32(8), 1e-6)), []string{"add_rms_norm", "input 1 is nil"}},
		{"silu_mul odd", ops.SiLUMul(f32(2, 7)), []string{"silu_mul", "input float32[2 7] must have an even last dimension"}},
		{"silu_mul scalar", ops.SiLUMul(f32()), []string{"silu_mul", "must have an even last dimension"}},
		{"silu_mul int", ops.SiLUMul(of(graph.Int32, 2, 8)), []string{"silu_mul", "dtype int32 is unsupported"}},
		{"silu_mul inherits", ops.SiLUMul(broken), []string{"add", "cannot be broadcast"}},
		{"gated_linear odd rows", ops.GatedLinear(f32(2, 4), f32(7, 4)), []string{"matmul_silu_mul", "w float32[7 4] must be [2N, K]"}},
		{"gated_linear dtypes", ops.GatedLinear(f32(2, 4), of(graph.Float16, 8, 4)), []string{"matmul_silu_mul", "dtypes differ: x is float32, w is float16"}},
		{"gated_linear inner", ops.GatedLinear(f32(2, 4), f32(8, 5)), []string{"matmul_silu_mul", "inner dimensions differ", "K=4", "K=5"}},
		{"gated_linear int", ops.GatedLinear(of(graph.Int32, 2, 4), of(graph.Int32, 8, 4)), []string{"matmul_silu_mul", "dtype int32 is unsupported"}},
		{"gated_linear vector", ops.GatedLinear(f32(4), f32(8, 4)), []string{"matmul_silu_mul", "x float32[4] must have rank 2"}},
		{"gated_linear w rank", ops.GatedLinear(f32(1, 4), f32(2, 8, 4)), []string{"matmul_silu_mul", "must be [2N, K]"}},
		{"gated_linear inherits", ops.GatedLinear(broken, f32(8, 3)), []string{"add", "cannot be broadcast"}},
		{"rope rank", ops.RoPE(f32(2, 8), i32(0, 1), 1e4), []string{"rope", "x must be [T, H, D], got shape [2 8]"}},
		{"rope odd", ops.RoPE(f32(2, 1, 7), i32(0, 1), 1e4), []string{"rope", "head dimension D = 7 is odd"}},
		{"rope positions dtype", ops.RoPE(f32(2, 1, 8), graph.FromInt64s([]int64{0, 1}), 1e4), []string{"rope", "positions must be int32, got int64"}},
		{"rope positions shape", ops.RoPE(f32(2, 1, 8), i32(0, 1, 2), 1e4), []string{"rope", "positions have shape [3], want [2]"}},
		{"rope theta", ops.RoPE(f32(2, 1, 8), i32(0, 1), 0), []string{"rope", "theta 0 must be finite and > 0"}},
		{"rope scaling", ops.RoPEScaled(f32(2, 1, 8), i32(0, 1), 1e4, primitives.RoPEScaling{Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositions: 64}), []string{"rope", "HighFreqFactor must be above LowFreqFactor"}},
		{"rope scaling zero", ops.RoPEScaled(f32(2, 1, 8), i32(0, 1), 1e4, primitives.RoPEScaling{Factor: 8}), []string{"rope", "every field must be finite and > 0"}},
		{"rope int", ops.RoPE(of(graph.Int32, 2, 1, 8), i32(0, 1), 1e4), []string{"rope", "dtype int32 is unsupported"}},
		{"rope nil", ops.RoPE(nil, i32(0), 1e4), []string{"rope", "input 0 is nil"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Every error names the call site: this file (or, for inherited
			// errors, the op that failed first, also in this file).
			wantErr(t, c.got, append(c.want, "errors_test.go:")...)
		})
	}
}

func first(a, _ *graph.Array) *graph.Array  { return a }
func second(_, b *graph.Array) *graph.Array { return b }
