/** Round to nearest, ties to even (numpy, torch.round, onnxruntime's Round); Math.round sends ties towards +∞. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for every finite double
  if (d === 0.5) return f % 2 === 0 ? f : f + 1;
  return d < 0.5 ? f : f + 1;
}
