// Integer matrices as comma-separated text, the bytes np.savetxt(fmt="%d") writes (or "%d.0", the text Python
// gives a whole float below 2^53), for the simulator's trace files. Framework-free: plain pointers and strides.
#pragma once

#include <cstdint>

namespace accelkit::text_rows {

// The most characters one value takes: "-9223372036854775808" (20), ".0" and its separator.
constexpr int64_t kMaxValueChars = 23;

// Row i is lead[i] (when lead is not null), then body[i, 0 .. cols), then pad_value until there are `width`
// values after the lead; values are separated by "," alone and each row ends in "\n".
struct RowsView {
  const int64_t* lead;   // rows entries at lead_stride elements apart, or nullptr for no lead column
  int64_t lead_stride;
  const int64_t* body;   // rows x cols at (row_stride, col_stride) elements apart
  int64_t rows, cols, row_stride, col_stride;
  int64_t width;         // values per row after the lead; a width below cols pads nothing
  int64_t pad_value;
  bool float_suffix;     // ".0" after every value
};

// Bytes format_rows may write for `view`, or -1 when that count does not fit in int64.
int64_t max_text_bytes(const RowsView& view);

// Writes the text of `view` into `out` (at least max_text_bytes(view) bytes) and returns the bytes written.
int64_t format_rows(const RowsView& view, char* out);

}  // namespace accelkit::text_rows
