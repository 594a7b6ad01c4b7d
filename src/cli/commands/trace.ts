import { Flags } from '@oclif/core';
import { MESSAGE_TYPES, type MessageType } from '../../messages/schemas.js';
import { BrokerCommand } from '../observer/command.js';
import { firehoseSupported, openFirehose } from '../observer/firehose.js';
import { safeUrl } from '../observer/observer.js';
import { brokerFlags, parseSeconds } from '../observer/settings.js';
import { TraceBook, formatTraceLine, type TraceRecord } from '../observer/trace.js';
import { errText } from '../../util/errors.js';

const DEFAULT_TYPES: MessageType[] = [
  'vm-event',
  'fence-request',
  'fence-reply',
  'fence-trace',
  'host-fenced',
  'announce',
];

export interface TraceResult {
  cluster: string;
  firehose: 'attached' | 'unavailable' | 'off';
  firehoseReason: string | null;
  records: TraceRecord[];
}

export default class Trace extends BrokerCommand {
  static override summary = 'Stream lifecycle events, fence requests and replies live.';
  static override description =
    'Prints every VM lifecycle event, host announcement and fencing evidence published on the ' +
    'cluster, and every fence request a daemon answered (fence-trace: request id, route, ' +
    'result, latency from request to answer), on any broker. The individual requests and ' +
    'replies between hosts travel on their private queues: on RabbitMQ they are seen too through ' +
    "the broker's firehose (enable it with 'rabbitmqctl trace_on'; the tap only reads copies). " +
    'Stops after --count records, after --duration, or on Ctrl-C. With --json the records are ' +
    'printed as one document at the end.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --vm vm-web1 --count 2',
    '<%= config.bin %> <%= command.id %> --host hv3 --duration 60 --type fence-request --type fence-reply',
    '<%= config.bin %> <%= command.id %> --duration 10 --json',
  ];
  static override flags = {
    ...brokerFlags,
    vm: Flags.string({ summary: 'Only this VM (name or UUID).', helpValue: 'VM' }),
    host: Flags.string({
      char: 'H',
      summary: 'Only messages from, to or about this host.',
      helpValue: 'HOST',
    }),
    count: Flags.integer({ char: 'n', summary: 'Stop after this many records.', min: 1 }),
    duration: Flags.custom<number>({
      summary: 'Stop after this many seconds.',
      helpValue: 'SECONDS',
      parse: async (input) => parseSeconds(input, '--duration'),
    })(),
    type: Flags.string({
      summary: `Message types to show (repeatable; default: ${DEFAULT_TYPES.join(', ')}).`,
      options: [...MESSAGE_TYPES],
      multiple: true,
    }),
    firehose: Flags.boolean({
      summary:
        "Read fence traffic between hosts from RabbitMQ's firehose (default on for rabbitmq3).",
      allowNo: true,
      default: true,
    }),
  };

  async run(): Promise<TraceResult> {
    const { flags } = await this.parse(Trace);
    const settings = await this.brokerSettings(flags);
    const types = new Set<MessageType>((flags.type as MessageType[] | undefined) ?? DEFAULT_TYPES);
    return this.withObserver(settings, { waitMs: 0, resync: false }, async (observer) => {
      const records: TraceRecord[] = [];
      let finish: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => (finish = resolve));
      const book = new TraceBook({ vm: flags.vm, host: flags.host, types }, (target) => {
        const table = observer.table();
        const uuids = table.resolve(target);
        if (uuids.length !== 1) return undefined;
        const uuid = uuids[0] as string;
        const name = table.claims(uuid)[0]?.name ?? target;
        return { name, uuid };
      });
      observer.onTrace((message, source, at) => {
        if (flags.count !== undefined && records.length >= flags.count) return;
        const r = book.record(message, source, at);
        if (!r) return;
        records.push(r);
        this.log(formatTraceLine(r));
        if (flags.count !== undefined && records.length >= flags.count) finish();
      });
      let firehose: TraceResult['firehose'] = 'off';
      let firehoseReason: string | null = null;
      let tap: { close(): Promise<void> } | undefined;
      if (flags.firehose && firehoseSupported(settings)) {
        const t = openFirehose(
          settings,
          (message, at) => observer.ingest(message, 'firehose', at),
          settings.connectTimeoutMs,
          observer.bus.stats().url,
        );
        tap = t;
        try {
          await t.ready;
          firehose = 'attached';
        } catch (error) {
          firehose = 'unavailable';
          firehoseReason = errText(error);
        }
      } else if (flags.firehose) {
        firehose = 'unavailable';
        firehoseReason = `profile ${settings.profile.name} has no firehose`;
      }
      const onSignal = () => finish();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const timer =
        flags.duration !== undefined ? setTimeout(() => finish(), flags.duration) : undefined;
      this.progress(
        `Tracing cluster ${settings.amqp.cluster} on ${safeUrl(observer.bus.stats().url ?? '')}` +
          ` (firehose: ${firehose}${firehoseReason ? ` — ${firehoseReason}` : ''})` +
          (firehose === 'attached'
            ? " [requests between hosts show only while the broker traces: 'rabbitmqctl trace_on']"
            : '') +
          `${flags.duration !== undefined ? ` for ${(flags.duration / 1000).toFixed(1)} s` : ', Ctrl-C to stop'}…`,
      );
      try {
        await finished;
      } finally {
        if (timer) clearTimeout(timer);
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await tap?.close();
      }
      return { cluster: settings.amqp.cluster, firehose, firehoseReason, records };
    });
  }
}
