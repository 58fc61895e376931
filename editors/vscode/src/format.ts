// Money, rates and short texts, formatted the same way as in the Neovim plugin (editors/nvim/lua/oh_lsp/format.lua).
// No VS Code imports: the unit tests run it under plain Node.

/** `$0.0015`, `$0.25`, `$0.125`, `$12.40`; `$0.00` for nothing; `<$0.0001` for a cost too small to show. */
export function formatCost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd) || usd <= 0) {
    return '$0.00';
  }
  if (usd < 0.0001) {
    return '<$0.0001';
  }
  if (usd >= 1) {
    return `$${usd.toFixed(2)}`;
  }
  return `$${usd.toFixed(4).replace(/(\.\d\d)(\d*?)0+$/, '$1$2')}`;
}

/** 0.916 -> `92%`. */
export function formatRate(rate: number): string {
  return `${Math.round(Math.max(0, Math.min(1, rate || 0)) * 100)}%`;
}

export const PROGRESS_MAX = 60; // the contract: progress text is at most 60 characters

/** `text` on one line and at most `max` characters: cut at a word boundary where one is near, with `…`. */
export function shortText(text: string | undefined, max: number = PROGRESS_MAX): string {
  const line = (text ?? '').replace(/\s+/g, ' ').trim();
  if (line.length <= max) {
    return line;
  }
  const cut = line.slice(0, max - 1);
  const space = line[max - 1] === ' ' ? cut.length : cut.lastIndexOf(' '); // cut after a whole word where one ends
  return `${(space >= max * 0.6 ? cut.slice(0, space) : cut).replace(/[\s,;:(-]+$/, '')}…`;
}
