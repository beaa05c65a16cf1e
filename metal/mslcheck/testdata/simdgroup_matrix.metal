// SIMD-group matrices: loads and stores with an origin and transposed,
// and a multiply-accumulate, by one SIMD group over 16×16 matrices.
#include <metal_stdlib>
using namespace metal;

struct MatrixParams {
    uint ax, ay, at; // origin (column, row) of a in src, and whether transposed
    uint bx, by;     // origin of b in src
    uint dx, dy, dt; // origin of the result in dst, and whether transposed
};

kernel void simdgroup_matrix_ops(device const float* src [[buffer(0)]],
                                 device float* dst [[buffer(1)]],
                                 constant MatrixParams& p [[buffer(2)]])
{
    simdgroup_float8x8 a, b;
    simdgroup_load(a, src, 16, ulong2(p.ax, p.ay), p.at != 0);
    simdgroup_load(b, src, 16, ulong2(p.bx, p.by));
    simdgroup_float8x8 d = make_filled_simdgroup_matrix<float, 8, 8>(0.5f);
    simdgroup_multiply_accumulate(d, a, b, d);
    simdgroup_store(d, dst, 16, ulong2(p.dx, p.dy), p.dt != 0);
}
