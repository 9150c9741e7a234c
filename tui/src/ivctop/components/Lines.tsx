/** Text lines cut to the screen width: every ivctop component renders through this, so height is exact. */
import { Box, Text } from 'ink';

export interface Line {
  text: string;
  color?: string;
  bold?: boolean;
  dim?: boolean;
  inverse?: boolean;
}

export function Lines({ lines, width }: { lines: readonly Line[]; width: number }) {
  return (
    <Box flexDirection="column" width={width}>
      {lines.map((l, i) => (
        <Text
          key={i}
          wrap="truncate-end"
          {...(l.color !== undefined ? { color: l.color } : {})}
          bold={l.bold === true}
          dimColor={l.dim === true}
          inverse={l.inverse === true}
        >
          {l.text === '' ? ' ' : l.text}
        </Text>
      ))}
    </Box>
  );
}

/** Puts blocks of lines side by side, each padded to its width, separated by `gap` spaces. */
export function sideBySide(blocks: readonly { lines: readonly Line[]; width: number }[], gap = 3): Line[] {
  const height = Math.max(0, ...blocks.map((b) => b.lines.length));
  const out: Line[] = [];
  for (let i = 0; i < height; i++) {
    const parts = blocks.map((b, j) => {
      const t = b.lines[i]?.text ?? '';
      return j === blocks.length - 1 ? t : t.padEnd(b.width + gap);
    });
    out.push({ text: parts.join('').trimEnd(), bold: blocks.some((b) => b.lines[i]?.bold === true) && i === 0 });
  }
  return out;
}
