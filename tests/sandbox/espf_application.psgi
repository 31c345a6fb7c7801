# An ESPF application written the way the ESPF guide's sample application (Appendix B) is:
# a PSGI app that takes Subscriber/* events from the EventSender (Basic auth, JSON),
# reads the account with Account/get_account_info and its SIM cards with
# SIMCard/get_card_list over HTTPS (HTTP::Tiny, one reused session), and "provisions" by
# writing one line per SIM card to a file:
#   action,account-id,balance,status,IMSI,datetime
# It is a third party's client of the sandbox: the tests run it unchanged with plackup.
#
#   RESULT_FILE=/tmp/hss.log SERVICE_LOGIN=events SERVICE_PASSWORD=topsecret \
#   PORTA_BILLING_API=127.0.0.1:8710 PORTA_BILLING_API_USER=opennsps \
#   PORTA_BILLING_API_PASSWORD=sandbox-password \
#   plackup --host 127.0.0.1 --port 9090 espf_application.psgi

use strict;
use warnings;
use Const::Fast;
use Cpanel::JSON::XS qw(decode_json encode_json);
use English qw(-no_match_vars);
use HTTP::Status qw(:constants);
use HTTP::Tiny;
use IO::File;
use MIME::Base64 qw(encode_base64);
use Plack::Request;
use POSIX qw(strftime);
use Cache::LRU;

const my $RESULT_FILE => ( $ENV{RESULT_FILE} // '/tmp/hss.log' );

my $user     = $ENV{SERVICE_LOGIN}    // 'events';
my $password = $ENV{SERVICE_PASSWORD} // 'topsecret';
my $base_auth_string = 'Basic ' . encode_base64( $user . ':' . $password, '' );

my $PB_API_HOST     = $ENV{PORTA_BILLING_API}          // '10.0.0.1';
my $PB_API_USER     = $ENV{PORTA_BILLING_API_USER}     // '';
my $PB_API_PASSWORD = $ENV{PORTA_BILLING_API_PASSWORD} // '';

my $SESSION_EXPIRATION = $ENV{SESSION_EXPIRATION} // 60;
my ( $session, $session_last_usage );

# PortaBilling's certificate is not verified, as in the guide's sample.
my $http = HTTP::Tiny->new( verify_ssl => 0, timeout => 5 );

my $active_req = Cache::LRU->new( size => 100 );

sub log_error { print STDERR '[ERROR] ', shift, "\n"; return; }
sub log_debug { print STDERR '[DEBUG] ', shift, "\n"; return; }

sub get_api_result {
    my ( $method, $session_id, $params ) = @_;
    my $response = $http->post_form(
        'https://' . $PB_API_HOST . '/rest/' . $method,
        {   auth_info => encode_json(
                $session_id
                ? { session_id => $session_id }
                : { login => $PB_API_USER, password => $PB_API_PASSWORD }
            ),
            params => encode_json($params),
        }
    );
    if ( !$response->{success} ) {
        log_error( sprintf 'PB API %s failed, error %s %s',
            $method, $response->{status}, $response->{reason} );
        return undef;
    }
    my $data = eval { decode_json( $response->{content} ) };
    if ( $EVAL_ERROR || !$data ) {
        log_error( sprintf 'Failed to parse reply content: %s, error %s',
            $response->{content} // '', $EVAL_ERROR );
        return undef;
    }
    return $data;
}

sub api_login {
    if ( $session_last_usage && $session_last_usage + $SESSION_EXPIRATION > time() ) {
        return $session;
    }
    my $data = get_api_result( 'Session/login', undef,
        { login => $PB_API_USER, password => $PB_API_PASSWORD } );
    return undef if ( !$data );
    $session            = $data->{session_id};
    $session_last_usage = time();
    return $session;
}

sub api_get_account_info {
    my ( $session_id, $i_account ) = @_;
    my $data = get_api_result( 'Account/get_account_info', $session_id,
        { i_account => $i_account } );
    return undef if ( !$data );
    $session_last_usage = time();
    return $data->{account_info};
}

sub api_get_sim_cards {
    my ( $session_id, $i_account ) = @_;
    my $data = get_api_result( 'SIMCard/get_card_list', $session_id,
        { i_account => $i_account } );
    return undef if ( !$data );
    $session_last_usage = time();
    return $data->{card_list};
}

sub write_line {
    my ( $fh, $h, $imsi, $datetime ) = @_;
    my $account = $h->{account};
    return printf $fh "%s,%s,%.5f,%s,%s,%s\n", $h->{action}, $account->{id},
        $account->{balance}, ( $account->{status} || 'open' ), $imsi, $datetime;
}

sub provision_external_system {
    my $h        = shift;
    my $sim_list = $h->{sim_cards} // [];
    my $datetime = strftime( '%Y-%m-%d %H:%M:%S', localtime() );
    my $fh       = IO::File->new( $RESULT_FILE, 'a' );
    if ( !defined $fh ) {
        log_error( sprintf 'Failed to open file %s, error %s', $RESULT_FILE, $OS_ERROR );
        return 0;
    }
    my $status = 1;
    if ( scalar( @{$sim_list} ) == 0 ) {
        $status = 0 if !write_line( $fh, $h, '', $datetime );
    }
    else {
        foreach my $sim ( @{$sim_list} ) {
            if ( !write_line( $fh, $h, $sim->{imsi}, $datetime ) ) {
                $status = 0;
                last;
            }
        }
    }
    $status = 0 if !$fh->close;
    log_debug( 'Provisioning status: ' . ( $status ? 'OK' : 'FAILURE' ) );
    return $status;
}

sub validate_request {
    my $req = shift;
    return HTTP_METHOD_NOT_ALLOWED if $req->method ne 'POST';
    return HTTP_UNAUTHORIZED if ( $req->header('Authorization') || '' ) ne $base_auth_string;
    return HTTP_UNSUPPORTED_MEDIA_TYPE if ( $req->content_type // '' ) ne 'application/json';
    return 0;
}

sub process_request {
    my $req  = shift;
    my $code = validate_request($req);
    return $code if ( $code > 0 );

    my $event = eval { decode_json( $req->content ) };
    if ( $EVAL_ERROR || !$event ) {
        log_error('Malformed JSON request');
        return HTTP_BAD_REQUEST;
    }
    log_debug( sprintf 'Received event: %s Variables: %s',
        $event->{event_type},
        join( ' ', map { $_ . '=' . $event->{variables}->{$_} } sort keys %{ $event->{variables} } ) );

    my $unique_id = $event->{variables}->{i_event};
    if ( defined $unique_id && ( my $cached_result = $active_req->get($unique_id) ) ) {
        $active_req->remove($unique_id);
        return $cached_result if $cached_result ne '-';
    }

    # Subscriber/Created, Subscriber/Updated, Subscriber/Deleted; variables: i_account
    my ( $object, $action ) = split( /\//, $event->{event_type}, 2 );
    return HTTP_OK if ( $object ne 'Subscriber' );

    my $i_account = $event->{variables}->{i_account};
    return HTTP_BAD_REQUEST if ( !$i_account );

    my $api_session = api_login();
    if ( !$api_session ) {
        log_error('PB API login failed');
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    my $account = api_get_account_info( $api_session, $i_account );
    if ( !$account ) {
        log_error('Account not found');
        return HTTP_OK;
    }
    my $sim_card_list = api_get_sim_cards( $api_session, $i_account );
    if ( !$sim_card_list ) {
        log_error('Failed to get SIM Cards for Account');
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    $active_req->set( $unique_id => '-' ) if defined $unique_id;
    if ( !provision_external_system(
            { action => $action, account => $account, sim_cards => $sim_card_list } ) )
    {
        $active_req->remove($unique_id) if defined $unique_id;
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    $active_req->set( $unique_id => HTTP_OK ) if defined $unique_id;
    return HTTP_OK;
}

my $app = sub {
    my $req  = Plack::Request->new(shift);
    my $code = process_request($req);
    return $req->new_response($code)->finalize;
};

log_debug('Started');

$app;
