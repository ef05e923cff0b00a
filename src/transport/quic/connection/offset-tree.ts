/**
 * An ordered set of disjoint byte ranges keyed by their start offset: an AVL tree, so that
 * inserting, removing and finding the neighbours of an offset cost O(log n) whatever order a
 * peer sends its fragments in (a sorted array pays O(n) per insert in the middle, which a
 * peer sending fragments in descending order turns into O(n²)).
 *
 * The tree only orders nodes; what a node holds is up to its user (see `recv-buffer.ts`).
 * A node's `start` must not change while it is in the tree; its `end` may.
 *
 * @module
 */

/** A node: the range [start, end) and its bytes. */
export interface RangeNode {
  readonly start: number;
  end: number;
  /** The bytes of [start, end), or undefined once discarded (the range is remembered, not the data). */
  data: Uint8Array | undefined;
  /** @internal tree links */
  left: RangeNode | undefined;
  right: RangeNode | undefined;
  height: number;
}

export function rangeNode(start: number, end: number, data: Uint8Array | undefined): RangeNode {
  return { start, end, data, left: undefined, right: undefined, height: 1 };
}

const h = (n: RangeNode | undefined): number => (n === undefined ? 0 : n.height);

function fix(n: RangeNode): void {
  const l = h(n.left);
  const r = h(n.right);
  n.height = (l > r ? l : r) + 1;
}

function rotateRight(n: RangeNode): RangeNode {
  const l = n.left!;
  n.left = l.right;
  l.right = n;
  fix(n);
  fix(l);
  return l;
}

function rotateLeft(n: RangeNode): RangeNode {
  const r = n.right!;
  n.right = r.left;
  r.left = n;
  fix(n);
  fix(r);
  return r;
}

function balance(n: RangeNode): RangeNode {
  fix(n);
  const bf = h(n.left) - h(n.right);
  if (bf > 1) {
    if (h(n.left!.left) < h(n.left!.right)) n.left = rotateLeft(n.left!);
    return rotateRight(n);
  }
  if (bf < -1) {
    if (h(n.right!.right) < h(n.right!.left)) n.right = rotateRight(n.right!);
    return rotateLeft(n);
  }
  return n;
}

function insertAt(root: RangeNode | undefined, node: RangeNode): RangeNode {
  if (root === undefined) return node;
  if (node.start < root.start) root.left = insertAt(root.left, node);
  else root.right = insertAt(root.right, node);
  return balance(root);
}

/** Remove the smallest node of a subtree; returns the new subtree root. */
function removeMin(root: RangeNode): RangeNode | undefined {
  if (root.left === undefined) return root.right;
  root.left = removeMin(root.left);
  return balance(root);
}

function removeAt(root: RangeNode | undefined, start: number): RangeNode | undefined {
  if (root === undefined) return undefined;
  if (start < root.start) root.left = removeAt(root.left, start);
  else if (start > root.start) root.right = removeAt(root.right, start);
  else {
    const { left, right } = root;
    root.left = root.right = undefined;
    root.height = 1;
    if (left === undefined) return right;
    if (right === undefined) return left;
    let min = right;
    while (min.left !== undefined) min = min.left;
    min.right = removeMin(right);
    min.left = left;
    return balance(min);
  }
  return balance(root);
}

export class OffsetTree {
  #root: RangeNode | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  insert(node: RangeNode): void {
    this.#root = insertAt(this.#root, node);
    this.#size++;
  }

  remove(node: RangeNode): void {
    this.#root = removeAt(this.#root, node.start);
    this.#size--;
  }

  /** The node with the smallest start. */
  first(): RangeNode | undefined {
    let n = this.#root;
    if (n === undefined) return undefined;
    while (n.left !== undefined) n = n.left;
    return n;
  }

  /** The node with the largest start ≤ x. */
  floor(x: number): RangeNode | undefined {
    let n = this.#root;
    let best: RangeNode | undefined;
    while (n !== undefined) {
      if (n.start <= x) {
        best = n;
        n = n.right;
      } else n = n.left;
    }
    return best;
  }

  /** The node with the smallest start ≥ x. */
  ceiling(x: number): RangeNode | undefined {
    let n = this.#root;
    let best: RangeNode | undefined;
    while (n !== undefined) {
      if (n.start >= x) {
        best = n;
        n = n.left;
      } else n = n.right;
    }
    return best;
  }

  /** Every node in order of start. */
  *nodes(): Generator<RangeNode> {
    const stack: RangeNode[] = [];
    let n = this.#root;
    while (n !== undefined || stack.length > 0) {
      while (n !== undefined) {
        stack.push(n);
        n = n.left;
      }
      n = stack.pop()!;
      yield n;
      n = n.right;
    }
  }

  clear(): void {
    this.#root = undefined;
    this.#size = 0;
  }
}
