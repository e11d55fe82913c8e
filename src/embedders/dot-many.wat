(module
  (memory (export "memory") 1)
  ;; The WebAssembly SIMD kernel behind dotMany (src/embedders/dot-many.ts), which ships its
  ;; assembled bytes; test/embedders.test.ts assembles this file with wabt and checks they match.
  ;; out[row] = dot(query, matrix[row]) for row < rows; dims must be a multiple of 8.
  ;; query at $q (dims f32), matrix at $m (rows * dims f32, row-major), out at $out (rows f64).
  ;; Two f32x4 accumulators per row, summed at the end of the row.
  (func (export "scores") (param $q i32) (param $m i32) (param $rows i32) (param $dims i32) (param $out i32)
    (local $row i32) (local $i i32) (local $bytes i32) (local $acc v128) (local $acc2 v128)
    (local.set $bytes (i32.shl (local.get $dims) (i32.const 2)))
    (block $done
      (loop $rows_loop
        (br_if $done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $acc2 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $inner_done
          (loop $inner
            (br_if $inner_done (i32.ge_u (local.get $i) (local.get $bytes)))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load (i32.add (local.get $q) (local.get $i)))
                         (v128.load (i32.add (local.get $m) (local.get $i))))))
            (local.set $acc2 (f32x4.add (local.get $acc2)
              (f32x4.mul (v128.load offset=16 (i32.add (local.get $q) (local.get $i)))
                         (v128.load offset=16 (i32.add (local.get $m) (local.get $i))))))
            (local.set $i (i32.add (local.get $i) (i32.const 32)))
            (br $inner)))
        (local.set $acc (f32x4.add (local.get $acc) (local.get $acc2)))
        (f64.store (local.get $out)
          (f64.promote_f32 (f32.add
            (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
            (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc))))))
        (local.set $out (i32.add (local.get $out) (i32.const 8)))
        (local.set $m (i32.add (local.get $m) (local.get $bytes)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $rows_loop)))))
