//! `flowscope observe`: `hubble observe` for one node — from the agent's API or from a file of
//! `-o jsonpb` lines.

use std::{
    collections::VecDeque,
    io::{self, BufRead, BufWriter, Write},
    path::PathBuf,
    time::SystemTime,
};

use anyhow::{bail, Context, Result};
use clap::ArgAction;
use tokio_stream::StreamExt;

use super::{
    client::{connect_with, status_error, TlsArgs, DEFAULT_SERVER},
    filters::{build_filters, ordered_filter_args, FilterArg, FLAGS},
    json::response_from_json,
    printer::{ColorMode, Format, Printer, PrinterOptions},
    time::{parse_time, TimeFormat},
};
use crate::api::{
    convert::{timestamp, timestamp_ns},
    filter::{self, FlowPredicate},
    proto::{
        flowscope::GetFlowsRequestExtension,
        observer::{
            get_flows_response::ResponseTypes, observer_client::ObserverClient, GetFlowsRequest,
            GetFlowsResponse,
        },
    },
};

/// Flows printed when no count, time range or --follow is given (hubble's default).
const DEFAULT_LAST: u64 = 20;

/// Show flows from the agent (or a file), filtered like `hubble observe`.
#[derive(clap::Args, Debug, Default)]
#[command(
    after_help = "Filter flags of the same kind are ORed, different kinds ANDed. \
--not negates the next filter flag. --ip/--port match either direction."
)]
pub struct ObserveArgs {
    /// Agent API address: unix:///path or host:port.
    #[arg(long, default_value = DEFAULT_SERVER, env = "FLOWSCOPE_SERVER")]
    pub server: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Read flows from FILE (`-` for stdin) of `-o jsonpb` lines instead of the agent.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Keep printing new flows.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The last N flows (default 20 without --follow/--since/--until).
    #[arg(long, value_name = "N", conflicts_with_all = ["first", "all"])]
    pub last: Option<u64>,
    /// The first N flows in the ring.
    #[arg(long, value_name = "N", conflicts_with_all = ["all", "follow"])]
    pub first: Option<u64>,
    /// Every flow in the ring.
    #[arg(long)]
    pub all: bool,
    /// Flows since this time: a duration ago (5m, 1h30m) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Flows until this time: a duration ago or RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Negate the next filter flag.
    #[arg(long = "not", action = ArgAction::Count)]
    pub not: u8,
    /// Source or destination IP or CIDR.
    #[arg(long, value_name = "CIDR")]
    pub ip: Vec<String>,
    /// Source IP or CIDR.
    #[arg(long, value_name = "CIDR")]
    pub from_ip: Vec<String>,
    /// Destination IP or CIDR.
    #[arg(long, value_name = "CIDR")]
    pub to_ip: Vec<String>,
    /// Source or destination port.
    #[arg(long)]
    pub port: Vec<String>,
    /// Source port.
    #[arg(long)]
    pub from_port: Vec<String>,
    /// Destination port.
    #[arg(long)]
    pub to_port: Vec<String>,
    /// tcp, udp, icmp, icmpv4, icmpv6, sctp, http, dns, grpc.
    #[arg(long)]
    pub protocol: Vec<String>,
    /// TCP flags that must all be set, e.g. SYN or SYN,ACK.
    #[arg(long)]
    pub tcp_flags: Vec<String>,
    /// FORWARDED, DROPPED, ...
    #[arg(long)]
    pub verdict: Vec<String>,
    /// Event type: trace, drop, l7, trace:to-endpoint, ...
    #[arg(short = 't', long = "type")]
    pub r#type: Vec<String>,
    /// HTTP status code or prefix: 200, 4+, 50+.
    #[arg(long)]
    pub http_status: Vec<String>,
    /// HTTP method.
    #[arg(long)]
    pub http_method: Vec<String>,
    /// Regular expression on the HTTP path.
    #[arg(long)]
    pub http_path: Vec<String>,
    /// W3C trace id.
    #[arg(long)]
    pub trace_id: Vec<String>,
    /// ingress or egress (direction of the connection).
    #[arg(long)]
    pub traffic_direction: Vec<String>,
    /// Only IPv4 flows.
    #[arg(short = '4', long, action = ArgAction::Count)]
    pub ipv4: u8,
    /// Only IPv6 flows.
    #[arg(short = '6', long, action = ArgAction::Count)]
    pub ipv6: u8,
    /// Process id owning the local socket.
    #[arg(long)]
    pub pid: Vec<String>,
    /// Command name owning the local socket (`*` wildcards).
    #[arg(long)]
    pub comm: Vec<String>,
    /// gRPC service (full name or last component).
    #[arg(long)]
    pub grpc_service: Vec<String>,
    /// gRPC method.
    #[arg(long)]
    pub grpc_method: Vec<String>,
    /// Node name pattern (`*` wildcards).
    #[arg(long)]
    pub node_name: Vec<String>,
    /// Flow uuid.
    #[arg(long)]
    pub uuid: Vec<String>,
    /// Regular expression on the DNS query.
    #[arg(long)]
    pub dns_query: Vec<String>,
    /// Source or destination pod: [namespace/]name-prefix (namespace `default` if not given).
    #[arg(long, value_name = "[NS/]POD")]
    pub pod: Vec<String>,
    /// Source pod: [namespace/]name-prefix.
    #[arg(long, value_name = "[NS/]POD")]
    pub from_pod: Vec<String>,
    /// Destination pod: [namespace/]name-prefix.
    #[arg(long, value_name = "[NS/]POD")]
    pub to_pod: Vec<String>,
    /// Source or destination pod's namespace.
    #[arg(short = 'n', long)]
    pub namespace: Vec<String>,
    /// Source pod's namespace.
    #[arg(long)]
    pub from_namespace: Vec<String>,
    /// Destination pod's namespace.
    #[arg(long)]
    pub to_namespace: Vec<String>,
    /// Source or destination label selector: reserved:host, k8s:app=x, app in (a,b), !key.
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Source label selector.
    #[arg(long)]
    pub from_label: Vec<String>,
    /// Destination label selector.
    #[arg(long)]
    pub to_label: Vec<String>,
    /// Source or destination security identity: a number or a reserved name (host, world,
    /// remote-node, unmanaged, ...).
    #[arg(long)]
    pub identity: Vec<String>,
    /// Source security identity.
    #[arg(long)]
    pub from_identity: Vec<String>,
    /// Destination security identity.
    #[arg(long)]
    pub to_identity: Vec<String>,
    /// Source or destination DNS name (`*` wildcards), from the DNS answers the agent saw.
    #[arg(long)]
    pub fqdn: Vec<String>,
    /// Source DNS name (`*` wildcards).
    #[arg(long)]
    pub from_fqdn: Vec<String>,
    /// Destination DNS name (`*` wildcards).
    #[arg(long)]
    pub to_fqdn: Vec<String>,
    /// TCP flows whose connection's smoothed RTT (both legs, from the capture point) is at
    /// least this, e.g. 20ms.
    #[arg(long)]
    pub min_rtt: Vec<String>,
    /// TCP flows whose connection retransmitted segments (or SYNs).
    #[arg(long, action = ArgAction::Count)]
    pub retransmits: u8,
    /// TCP flows whose connection was reset or refused.
    #[arg(long, action = ArgAction::Count)]
    pub tcp_reset: u8,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Format,
    /// Colours.
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorMode,
    /// Timestamp layout (Go layout names).
    #[arg(long, value_enum, default_value_t)]
    pub time_format: TimeFormat,
    /// Print times in UTC rather than local time.
    #[arg(long)]
    pub utc: bool,
    /// Show the node name of each flow.
    #[arg(long)]
    pub print_node_name: bool,

    /// The raw arguments (for --not ordering); empty means the process's own.
    #[arg(skip)]
    pub raw_args: Vec<String>,
}

impl ObserveArgs {
    /// How many values clap saw for a filter flag (to cross-check the ordered parse).
    fn clap_count(&self, name: &str) -> usize {
        match name {
            "ip" => self.ip.len(),
            "from-ip" => self.from_ip.len(),
            "to-ip" => self.to_ip.len(),
            "port" => self.port.len(),
            "from-port" => self.from_port.len(),
            "to-port" => self.to_port.len(),
            "protocol" => self.protocol.len(),
            "tcp-flags" => self.tcp_flags.len(),
            "verdict" => self.verdict.len(),
            "type" => self.r#type.len(),
            "http-status" => self.http_status.len(),
            "http-method" => self.http_method.len(),
            "http-path" => self.http_path.len(),
            "trace-id" => self.trace_id.len(),
            "traffic-direction" => self.traffic_direction.len(),
            "ipv4" => self.ipv4.into(),
            "ipv6" => self.ipv6.into(),
            "pid" => self.pid.len(),
            "comm" => self.comm.len(),
            "grpc-service" => self.grpc_service.len(),
            "grpc-method" => self.grpc_method.len(),
            "node-name" => self.node_name.len(),
            "uuid" => self.uuid.len(),
            "dns-query" => self.dns_query.len(),
            "pod" => self.pod.len(),
            "from-pod" => self.from_pod.len(),
            "to-pod" => self.to_pod.len(),
            "namespace" => self.namespace.len(),
            "from-namespace" => self.from_namespace.len(),
            "to-namespace" => self.to_namespace.len(),
            "label" => self.label.len(),
            "from-label" => self.from_label.len(),
            "to-label" => self.to_label.len(),
            "identity" => self.identity.len(),
            "from-identity" => self.from_identity.len(),
            "to-identity" => self.to_identity.len(),
            "fqdn" => self.fqdn.len(),
            "from-fqdn" => self.from_fqdn.len(),
            "to-fqdn" => self.to_fqdn.len(),
            "min-rtt" => self.min_rtt.len(),
            "retransmits" => self.retransmits.into(),
            "tcp-reset" => self.tcp_reset.into(),
            _ => 0,
        }
    }

    /// The filter flags in command-line order.
    fn filter_args(&self) -> Result<Vec<FilterArg>> {
        let raw: Vec<String> = if self.raw_args.is_empty() {
            std::env::args().skip(1).collect()
        } else {
            self.raw_args.clone()
        };
        let got = ordered_filter_args(&raw)?;
        let negated = got.iter().filter(|a| a.negated).count();
        let mismatch = got
            .iter()
            .map(|a| a.name)
            .any(|n| got.iter().filter(|a| a.name == n).count() != self.clap_count(n));
        let total: usize = FLAGS.iter().map(|(n, _, _)| self.clap_count(n)).sum();
        if mismatch || total != got.len() || negated != usize::from(self.not) {
            bail!(
                "could not tell which filter flag each --not applies to; \
                 write filter flags as `--flag value` or `--flag=value`"
            );
        }
        Ok(got)
    }

    /// The filters, time window and count of the request.
    /// The GetFlows request these flags describe.
    pub fn request(&self, now: SystemTime) -> Result<GetFlowsRequest> {
        let (whitelist, blacklist) = build_filters(&self.filter_args()?)?;
        let since = self
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?;
        let (number, first) = match (self.last, self.first, self.all) {
            (_, _, true) => (u64::MAX, false),
            (Some(n), _, _) => (n, false),
            (None, Some(n), _) => (n, true),
            (None, None, false) => {
                if self.follow || since.is_some() || until.is_some() {
                    (0, false)
                } else {
                    (DEFAULT_LAST, false)
                }
            }
        };
        Ok(GetFlowsRequest {
            number,
            first,
            follow: self.follow,
            blacklist,
            whitelist,
            since: since.map(timestamp),
            until: until.map(timestamp),
            extensions: Some(
                GetFlowsRequestExtension {
                    include_flow_extension: true,
                }
                .to_any(),
            ),
        })
    }

    /// How to print, per these flags.
    pub fn printer_options(&self) -> PrinterOptions {
        PrinterOptions {
            format: self.output,
            color: self.color.enabled(),
            time_format: self.time_format,
            utc: self.utc,
            node_name: self.print_node_name,
            streaming: self.follow,
        }
    }
}

/// Treats a closed stdout (`| head`) as a normal end.
pub fn quiet_pipe(r: io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// Runs `flowscope observe`.
pub fn run(args: ObserveArgs) -> Result<()> {
    let req = args.request(SystemTime::now())?;
    let pred = filter::compile(&req.whitelist, &req.blacklist)?;
    let stdout = io::stdout();
    let mut printer = Printer::new(args.printer_options(), BufWriter::new(stdout.lock()));
    let result = match &args.input_file {
        Some(path) => read_input(path, &req, &pred, &mut printer),
        None => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(observe_server(
                &args.server,
                &args.tls,
                req,
                args.follow,
                &mut printer,
            ))
        }
    };
    let finished = quiet_pipe(printer.finish());
    result.and(finished)
}

async fn observe_server<W: Write>(
    server: &str,
    tls: &TlsArgs,
    req: GetFlowsRequest,
    follow: bool,
    printer: &mut Printer<W>,
) -> Result<()> {
    let channel = connect_with(server, tls).await?;
    let mut client = ObserverClient::new(channel);
    let mut stream = client
        .get_flows(req)
        .await
        .map_err(|s| status_error(server, &s))?
        .into_inner();
    while let Some(item) = stream.next().await {
        let resp = item.map_err(|s| status_error(server, &s))?;
        if quiet_pipe(printer.print_response(&resp)).is_err() {
            return Ok(());
        }
        if follow {
            if let Err(e) = printer.writer().flush() {
                return quiet_pipe(Err(e));
            }
        }
    }
    Ok(())
}

/// Replays `-o jsonpb` lines through the same window, filters and printer.
fn read_input<W: Write>(
    path: &std::path::Path,
    req: &GetFlowsRequest,
    pred: &FlowPredicate,
    printer: &mut Printer<W>,
) -> Result<()> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(io::BufReader::new(std::fs::File::open(path).with_context(
            || format!("cannot open --input-file {}", path.display()),
        )?))
    };
    let responses = reader.lines().enumerate().filter_map(|(n, line)| {
        let parsed = line
            .with_context(|| format!("cannot read {}", path.display()))
            .and_then(|line| {
                if line.trim().is_empty() {
                    return Ok(None);
                }
                response_from_json(&line)
                    .map(Some)
                    .with_context(|| format!("{} line {}", path.display(), n + 1))
            });
        parsed.transpose()
    });
    print_window(responses, req, pred, printer)
}

/// Prints responses that are not from a live agent (a file, a replayed capture) through the
/// request's window (`--first/--last/--since/--until`), filters and printer.
pub fn print_window<W: Write>(
    responses: impl Iterator<Item = Result<GetFlowsResponse>>,
    req: &GetFlowsRequest,
    pred: &FlowPredicate,
    printer: &mut Printer<W>,
) -> Result<()> {
    let since = req.since.as_ref().map(timestamp_ns);
    let until = req.until.as_ref().map(timestamp_ns);
    // A file has no "default 20": unless a count was given, print everything.
    let explicit_count = req.number != 0 && req.number != DEFAULT_LAST;
    let limit = if req.number == 0 || req.number == u64::MAX {
        usize::MAX
    } else {
        usize::try_from(req.number).unwrap_or(usize::MAX)
    };
    let mut last: VecDeque<GetFlowsResponse> = VecDeque::new();
    let mut printed = 0usize;
    for resp in responses {
        let resp = resp?;
        if let Some(ResponseTypes::Flow(f)) = &resp.response_types {
            let t = f.time.as_ref().map(timestamp_ns).unwrap_or(0);
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                continue;
            }
            if !pred.matches_flow(f) {
                continue;
            }
        } else if resp.response_types.is_none() {
            continue;
        }
        if req.first || !explicit_count {
            if printed >= limit && req.first {
                break;
            }
            quiet_pipe(printer.print_response(&resp))?;
            printed += 1;
        } else {
            last.push_back(resp);
            if last.len() > limit {
                last.pop_front();
            }
        }
    }
    for resp in &last {
        quiet_pipe(printer.print_response(resp))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        observe: ObserveArgs,
    }

    fn parse(line: &str) -> ObserveArgs {
        let argv: Vec<String> = std::iter::once("observe")
            .chain(line.split_whitespace())
            .map(String::from)
            .collect();
        let mut a = Cli::try_parse_from(&argv).unwrap().observe;
        a.raw_args = argv;
        a
    }

    #[test]
    fn request_counts_like_hubble() {
        let now = SystemTime::now();
        let r = parse("").request(now).unwrap();
        assert_eq!((r.number, r.first, r.follow), (20, false, false));
        let r = parse("-f").request(now).unwrap();
        assert_eq!((r.number, r.follow), (0, true));
        let r = parse("--first 5").request(now).unwrap();
        assert_eq!((r.number, r.first), (5, true));
        let r = parse("--all").request(now).unwrap();
        assert_eq!(r.number, u64::MAX);
        let r = parse("--since 5m").request(now).unwrap();
        assert_eq!(r.number, 0);
        assert!(r.since.is_some());
        assert!(GetFlowsRequestExtension::from_request(&r).include_flow_extension);
    }

    #[test]
    fn kubernetes_filters_come_from_flags() {
        let r =
            parse("-n shop --not --to-fqdn *.example.org --from-identity host -l reserved:world")
                .request(SystemTime::now())
                .unwrap();
        assert_eq!(r.whitelist.len(), 2);
        assert_eq!(r.whitelist[0].source_pod, ["shop/"]);
        assert_eq!(r.whitelist[0].source_identity, [1]);
        assert_eq!(r.whitelist[0].source_label, ["reserved:world"]);
        assert_eq!(r.whitelist[1].destination_pod, ["shop/"]);
        assert_eq!(r.whitelist[1].destination_label, ["reserved:world"]);
        assert_eq!(r.blacklist[0].destination_fqdn, ["*.example.org"]);
    }

    #[test]
    fn filters_come_from_flags() {
        let r = parse("--http-status 200 --not --port 80 -4")
            .request(SystemTime::now())
            .unwrap();
        assert_eq!(r.whitelist.len(), 1);
        assert_eq!(r.whitelist[0].http_status_code, ["200"]);
        assert_eq!(r.whitelist[0].ip_version, [1]);
        assert_eq!(r.blacklist.len(), 2);
        assert!(parse("--since tomorrow")
            .request(SystemTime::now())
            .is_err());
        assert!(parse("--ip 1.2.3.400").request(SystemTime::now()).is_err());
    }
}
