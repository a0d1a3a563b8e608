// pybind11 bindings of decode attention (csrc/attention_decode.cpp): the cache, the stream-K schedule and the
// outputs. Every check runs here, before the GIL is released, and fails with ValueError naming the argument; the
// module is csrc/bindings.cpp, the shared checks csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/attention.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace aa = accelkit::attention;
namespace {

// The schedule must be the partition of exactly these sequences into pieces the kernel can index safely: tile
// offsets from the lengths, contiguous program ranges covering every LeanTile once, and for each tile the programs
// that meet it exactly first_program[o] .. first_program[o] + num_pieces[o] - 1, with piece_offsets their prefix sum.
// One walk over programs and tiles, O(O + P).
void check_schedule(const aa::DecodeProblem& pr) {
  const int64_t tiles = pr.batch * pr.h_kv, programs = pr.num_programs;
  const int64_t* to = pr.tile_offsets;
  if (to[0] != 0) fail("tile_offsets must start at 0");
  for (int64_t o = 0; o < tiles; ++o) {
    const int64_t length = pr.seqlens[o / pr.h_kv];
    // ceil(length / block_n) without length + block_n - 1, which overflows for a block_n near 2^63.
    if (to[o + 1] < to[o] || to[o + 1] - to[o] != length / pr.block_n + (length % pr.block_n != 0))
      fail("tile_offsets does not match cache_seqlens and block_n at output tile " + std::to_string(o));
  }
  const int64_t* ps = pr.program_starts;
  if (ps[0] != 0 || ps[programs] != to[tiles])
    fail("program_starts must run from 0 to the " + std::to_string(to[tiles]) + " LeanTiles");
  for (int64_t p = 0; p < programs; ++p)
    if (ps[p + 1] < ps[p]) fail("program_starts must not decrease (program " + std::to_string(p) + ")");
  if (pr.piece_offsets[0] != 0) fail("piece_offsets must start at 0");
  // Every count below stays within [0, programs] before it is added, so no sum overflows.
  for (int64_t o = 0; o < tiles; ++o) {
    if (pr.num_pieces[o] < 0 || pr.num_pieces[o] > programs || pr.first_program[o] < 0 ||
        pr.first_program[o] > programs - pr.num_pieces[o])
      fail("first_program and num_pieces must name programs in [0, " + std::to_string(programs) + ") at tile " +
           std::to_string(o));
    if (pr.piece_offsets[o + 1] != pr.piece_offsets[o] + pr.num_pieces[o])
      fail("piece_offsets must be the prefix sum of num_pieces");
  }
  std::vector<int64_t> met(static_cast<size_t>(tiles), 0);
  int64_t o = 0;
  for (int64_t p = 0; p < programs; ++p) {
    if (ps[p] == ps[p + 1]) continue;
    while (to[o + 1] <= ps[p]) ++o;
    for (; o < tiles && to[o] < ps[p + 1]; ++o) {
      if (to[o] == to[o + 1]) continue;
      if (p < pr.first_program[o] || p >= pr.first_program[o] + pr.num_pieces[o])
        fail("first_program and num_pieces do not match program_starts: program " + std::to_string(p) +
             " meets tile " + std::to_string(o));
      ++met[o];
    }
    o = std::max<int64_t>(0, o - 1);  // the next program may continue the last tile this one met
  }
  for (int64_t t = 0; t < tiles; ++t)
    if (met[t] != pr.num_pieces[t])
      fail("num_pieces does not match program_starts at tile " + std::to_string(t));
}

// The cache: [B, T_cache, H_kv, D] or pages [num_pages, page_size, H_kv, D], float32 or bfloat16 bits (int16),
// rows of D contiguous; every key a sequence reaches must lie inside it.
void cache_operands(aa::DecodeProblem& pr, const py::array& k, const py::array& v, const py::object& table_obj,
                    py::array& table, const std::vector<int64_t>& lengths) {
  const bool f32 = is_dtype(k, 'f', 4);
  if (!f32 && !is_dtype(k, 'i', 2) && !is_dtype(k, 'u', 2))
    fail("k_cache must be float32 or bfloat16 bits (int16), got " + dtype_str(k));
  if (!k.dtype().is(v.dtype())) fail("v_cache dtype " + dtype_str(v) + " differs from k_cache's " + dtype_str(k));
  for (int d = 0; d < 4; ++d)
    if (v.shape(d) != k.shape(d))
      fail("v_cache must have k_cache's shape " + shape_str(k) + ", got " + shape_str(v));
  if (k.shape(2) != pr.h_kv || k.shape(3) != pr.head_dim)
    fail("k_cache must be [.., .., H_kv, D] with D = " + std::to_string(pr.head_dim) + " (q's head dim), got " +
         shape_str(k));
  if (pr.h_kv < 1 || pr.h_q % pr.h_kv != 0)
    fail("q's H_q = " + std::to_string(pr.h_q) + " must be a multiple of k_cache's H_kv = " +
         std::to_string(pr.h_kv));
  // (An empty array may carry any strides: NumPy makes some of them 0.)
  if (pr.head_dim > 1 && k.size() > 0 && (stride_of(k, 3) != 1 || stride_of(v, 3) != 1))
    fail("k_cache and v_cache must have contiguous rows (stride 1 along D)");
  pr.cache_type = f32 ? aa::CacheType::f32 : aa::CacheType::bf16;
  pr.k = k.data();
  pr.v = v.data();
  for (int d = 0; d < 3; ++d) {
    pr.k_stride[d] = stride_of(k, d);
    pr.v_stride[d] = stride_of(v, d);
  }
  pr.cache_rows = k.shape(1);
  pr.num_pages = k.shape(0);
  int64_t capacity = pr.cache_rows;
  if (!table_obj.is_none()) {
    table = as_nd_array(table_obj, "block_table", 2);
    require_int32(table, "block_table");
    if (table.shape(0) != pr.batch)
      fail("block_table must be [B, max_blocks] with B = " + std::to_string(pr.batch) + ", got " + shape_str(table));
    if (pr.cache_rows < 1) fail("a paged k_cache must have page_size (dim 1) >= 1, got " + shape_str(k));
    pr.block_table = static_cast<const int32_t*>(table.data());
    pr.block_table_stride[0] = stride_of(table, 0);
    pr.block_table_stride[1] = stride_of(table, 1);
    pr.max_blocks = table.shape(1);
    capacity = pr.max_blocks * pr.cache_rows;
  } else if (pr.num_pages != pr.batch) {
    fail("a contiguous k_cache must be [B, T_cache, H_kv, D] with B = " + std::to_string(pr.batch) + ", got " +
         shape_str(k));
  }
  for (int64_t b = 0; b < pr.batch; ++b) {
    if (lengths[b] < 0 || lengths[b] > capacity)
      fail("cache_seqlens[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " must lie in [0, " +
           std::to_string(capacity) + "]");
    if (!pr.block_table) continue;
    const int64_t used = (lengths[b] + pr.cache_rows - 1) / pr.cache_rows;
    for (int64_t i = 0; i < used; ++i) {
      const int64_t page = pr.block_table[b * pr.block_table_stride[0] + i * pr.block_table_stride[1]];
      if (page < 0 || page >= pr.num_pages)
        fail("block_table[" + std::to_string(b) + ", " + std::to_string(i) + "] = " + std::to_string(page) +
             " points outside the " + std::to_string(pr.num_pages) + " pages of k_cache");
    }
  }
}

void decode_attention(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                      const py::object& seqlens_obj, const py::object& table_obj, double scale, int64_t block_n,
                      const py::object& tile_offsets_obj, const py::object& program_starts_obj,
                      const py::object& first_program_obj, const py::object& num_pieces_obj,
                      const py::object& piece_offsets_obj, const py::object& out_obj, const py::object& lse_obj,
                      const std::string& isa_name, int threads) {
  aa::DecodeProblem pr;
  const py::array q = as_nd_array(q_obj, "q", 4);
  if (!is_dtype(q, 'f', 4)) fail("q must have dtype float32, got " + dtype_str(q));
  pr.batch = q.shape(0);
  pr.t_q = q.shape(1);
  pr.h_q = q.shape(2);
  pr.head_dim = q.shape(3);
  if (pr.t_q > aa::kMaxChunk)
    fail("q must hold at most " + std::to_string(aa::kMaxChunk) + " tokens (T_q), got shape " + shape_str(q));
  pr.q = static_cast<const float*>(q.data());
  for (int d = 0; d < 4; ++d) pr.q_stride[d] = stride_of(q, d);
  if (!std::isfinite(scale)) fail("scale must be finite, got " + std::to_string(scale));
  pr.scale = static_cast<float>(scale);
  if (block_n < 1) fail("block_n must be >= 1, got " + std::to_string(block_n));
  pr.block_n = block_n;

  const py::array seqlens = as_nd_array(seqlens_obj, "cache_seqlens", 1);
  pr.seqlens = int64_vector(seqlens, "cache_seqlens", pr.batch);
  const std::vector<int64_t> lengths(pr.seqlens, pr.seqlens + pr.batch);
  const py::array k = as_nd_array(k_obj, "k_cache", 4);
  const py::array v = as_nd_array(v_obj, "v_cache", 4);
  pr.h_kv = k.shape(2);
  py::array table;
  cache_operands(pr, k, v, table_obj, table, lengths);

  const int64_t tiles = pr.batch * pr.h_kv;
  const py::array tile_offsets = as_nd_array(tile_offsets_obj, "tile_offsets", 1);
  const py::array program_starts = as_nd_array(program_starts_obj, "program_starts", 1);
  const py::array first_program = as_nd_array(first_program_obj, "first_program", 1);
  const py::array num_pieces = as_nd_array(num_pieces_obj, "num_pieces", 1);
  const py::array piece_offsets = as_nd_array(piece_offsets_obj, "piece_offsets", 1);
  if (program_starts.shape(0) < 2) fail("program_starts must have P + 1 >= 2 entries, got " + shape_str(program_starts));
  pr.num_programs = program_starts.shape(0) - 1;
  pr.tile_offsets = int64_vector(tile_offsets, "tile_offsets", tiles + 1);
  pr.program_starts = int64_vector(program_starts, "program_starts", pr.num_programs + 1);
  pr.first_program = int64_vector(first_program, "first_program", tiles);
  pr.num_pieces = int64_vector(num_pieces, "num_pieces", tiles);
  pr.piece_offsets = int64_vector(piece_offsets, "piece_offsets", tiles + 1);
  check_schedule(pr);

  py::array out = as_nd_array(out_obj, "out", 4);
  py::array lse = as_nd_array(lse_obj, "lse", 3);
  if (!is_dtype(out, 'f', 4)) fail("out must have dtype float32, got " + dtype_str(out));
  if (!is_dtype(lse, 'f', 4)) fail("lse must have dtype float32, got " + dtype_str(lse));
  require_output(out, "out");
  require_output(lse, "lse");
  for (int d = 0; d < 4; ++d)
    if (out.shape(d) != q.shape(d)) fail("out must have q's shape " + shape_str(q) + ", got " + shape_str(out));
  if (lse.shape(0) != pr.batch || lse.shape(1) != pr.h_q || lse.shape(2) != pr.t_q)
    fail("lse must have shape (" + std::to_string(pr.batch) + ", " + std::to_string(pr.h_q) + ", " +
         std::to_string(pr.t_q) + "), got " + shape_str(lse));
  for (const py::array* dst : {&out, &lse}) {
    const std::string name = dst == &out ? "out" : "lse";
    require_disjoint(*dst, q, name, "q");
    require_disjoint(*dst, k, name, "k_cache");
    require_disjoint(*dst, v, name, "v_cache");
  }
  require_disjoint(out, lse, "out", "lse");
  pr.out = static_cast<float*>(out.mutable_data());
  pr.lse = static_cast<float*>(lse.mutable_data());

  const aa::Isa isa = parse_isa(isa_name, aa::isa_supported);
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
  aa::Status status;
  {
    py::gil_scoped_release release;
    status = aa::decode_attention(pr, isa, threads);
  }
  if (status != aa::Status::ok) fail("decode_attention: invalid arguments");
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("decode_attention", &decode_attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
        py::arg("cache_seqlens"), py::arg("block_table"), py::arg("scale"), py::arg("block_n"),
        py::arg("tile_offsets"), py::arg("program_starts"), py::arg("first_program"), py::arg("num_pieces"),
        py::arg("piece_offsets"), py::arg("out"), py::arg("lse"), py::arg("isa") = "auto", py::arg("threads") = 0,
        "Decode attention of q (float32 [B, T_q, H_q, D], T_q <= 16, any strides) over a KV cache (float32 or "
        "bfloat16 bits as int16; [B, T_cache, H_kv, D], or pages [num_pages, page_size, H_kv, D] with block_table "
        "int32 [B, max_blocks]; rows of D contiguous), cache_seqlens int64 [B]: query t sees keys j <= "
        "cache_seqlens[b] - T_q + t. The work is partitioned by the schedule arrays of "
        "kernels/lean_attention/schedule.py (int64). Writes out float32 [B, T_q, H_q, D] and the natural-log lse "
        "float32 [B, H_q, T_q], both C-contiguous; a query that sees no key gets 0 and -inf.");
  m.def("decode_attention_isa", [] { return std::string(aa::isa_name(aa::best_isa())); },
        "The decode attention path isa='auto' selects on this CPU: 'avx512', 'avx2' or 'scalar'.");
  m.def("decode_attention_isa_supported",
        [](const std::string& isa) { return isa_available(isa, aa::isa_supported); });
}

}  // namespace bindings
}  // namespace accelkit
