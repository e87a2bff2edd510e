/**
 * `Symbol.asyncDispose` for Node versions before 20.4 (later ones define it), so `await using`
 * works. Imported before any class that defines `[Symbol.asyncDispose]`.
 */
(Symbol as { asyncDispose?: symbol }).asyncDispose ??= Symbol.for('Symbol.asyncDispose');
export {};
